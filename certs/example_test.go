package certs_test

import (
	"crypto/tls"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"

	"github.com/quicmsg/quicmsg/certs"
)

func ExampleEnsureDev() {
	dir, err := os.MkdirTemp("", "quicmsg-dev")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// The first call creates a CA and a server certificate for the
	// default hosts (localhost, 127.0.0.1 and ::1).
	files, err := certs.EnsureDev(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("generated:", files.Generated)
	fmt.Println(filepath.Base(files.CAFile), filepath.Base(files.CertFile), filepath.Base(files.KeyFile))

	// Later calls reuse the files while they are valid.
	again, err := certs.EnsureDev(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("generated:", again.Generated, "same pin:", again.Pin == files.Pin)
	// Output:
	// generated: true
	// ca.pem server.pem server-key.pem
	// generated: false same pin: true
}

// This example runs a TLS 1.3 handshake with development certificates,
// authenticating the server once through the dev CA and once by its public
// key pin alone.
func ExampleClientConfig() {
	dir, err := os.MkdirTemp("", "quicmsg-dev")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	files, err := certs.EnsureDev(dir, nil)
	if err != nil {
		log.Fatal(err)
	}

	serverConf, err := certs.ServerConfig(certs.ServerOptions{
		CertFile:   files.CertFile,
		KeyFile:    files.KeyFile,
		NextProtos: []string{"quicmsg"},
	})
	if err != nil {
		log.Fatal(err)
	}
	byCA, err := certs.ClientConfig(certs.ClientOptions{
		CAFile:     files.CAFile,
		ServerName: "localhost",
		NextProtos: []string{"quicmsg"},
	})
	if err != nil {
		log.Fatal(err)
	}
	byPin, err := certs.ClientConfig(certs.ClientOptions{
		PinSHA256:  files.Pin,
		NextProtos: []string{"quicmsg"},
	})
	if err != nil {
		log.Fatal(err)
	}

	for _, clientConf := range []*tls.Config{byCA, byPin} {
		state, err := pipeHandshake(serverConf, clientConf)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(tls.VersionName(state.Version), state.NegotiatedProtocol)
	}
	// Output:
	// TLS 1.3 quicmsg
	// TLS 1.3 quicmsg
}

// This example requires client certificates (mutual TLS) issued by the
// development CA.
func ExampleServerConfig() {
	dir, err := os.MkdirTemp("", "quicmsg-dev")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	files, err := certs.EnsureDev(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	clientCert, clientKey, err := certs.NewDevClientCert(dir, "alice")
	if err != nil {
		log.Fatal(err)
	}

	serverConf, err := certs.ServerConfig(certs.ServerOptions{
		CertFile:     files.CertFile,
		KeyFile:      files.KeyFile,
		ClientCAFile: files.CAFile,
	})
	if err != nil {
		log.Fatal(err)
	}
	clientConf, err := certs.ClientConfig(certs.ClientOptions{
		CAFile:     files.CAFile,
		ServerName: "localhost",
		CertFile:   clientCert,
		KeyFile:    clientKey,
	})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := pipeHandshake(serverConf, clientConf); err != nil {
		log.Fatal(err)
	}
	fmt.Println(serverConf.ClientAuth)
	// Output:
	// RequireAndVerifyClientCert
}

func ExampleParsePin() {
	for _, in := range []string{
		"sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
		"sha256//47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	} {
		pin, err := certs.ParsePin(in)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(pin)
	}
	// Output:
	// sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=
	// sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=
	// sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=
}

// pipeHandshake runs both sides of a handshake over an in-memory pipe and
// returns the client's view of the connection. The client reads one byte
// the server writes after its handshake, so server-side rejections surface.
func pipeHandshake(serverConf, clientConf *tls.Config) (tls.ConnectionState, error) {
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	errc := make(chan error, 1)
	go func() {
		s := tls.Server(c1, serverConf)
		err := s.Handshake()
		if err == nil {
			_, err = s.Write([]byte{1})
		}
		c1.Close()
		errc <- err
	}()
	c := tls.Client(c2, clientConf)
	err := c.Handshake()
	if err == nil {
		_, err = c.Read(make([]byte, 1))
	}
	c2.Close()
	if serr := <-errc; err == nil {
		err = serr
	}
	return c.ConnectionState(), err
}

package certs

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParsePinLeadingSlash(t *testing.T) {
	// Digests whose base64 starts with "/" in canonical and curl form.
	sum := make([]byte, sha256.Size)
	sum[0] = 0xfc // base64 "/..."
	b64 := base64.StdEncoding.EncodeToString(sum)
	require.Equal(t, byte('/'), b64[0])
	for _, in := range []string{"sha256/" + b64, "sha256//" + b64, "sha256/" + b64[:43], "sha256//" + b64[:43], b64} {
		got, err := ParsePin(in)
		require.NoError(t, err, in)
		require.Equal(t, "sha256/"+b64, got, in)
	}
}

func TestPublicKeyPin(t *testing.T) {
	kp := mustLeaf(t, nil, LeafOptions{Hosts: []string{"localhost"}})
	sum := sha256.Sum256(kp.Cert.RawSubjectPublicKeyInfo)
	want := "sha256/" + base64.StdEncoding.EncodeToString(sum[:])
	require.Equal(t, want, PublicKeyPin(kp.Cert))
	require.Equal(t, want, kp.Pin())

	certFile, _ := writePair(t, t.TempDir(), "leaf", kp)
	got, err := PinFile(certFile)
	require.NoError(t, err)
	require.Equal(t, want, got)

	b64 := base64.StdEncoding.EncodeToString(sum[:])
	hx := hex.EncodeToString(sum[:])
	var colons []string
	for i := 0; i < len(hx); i += 2 {
		colons = append(colons, strings.ToUpper(hx[i:i+2]))
	}
	for _, in := range []string{
		want, "SHA256/" + b64, "sha256//" + b64, b64, strings.TrimRight(b64, "="),
		hx, "sha256/" + hx, strings.ToUpper(hx), strings.Join(colons, ":"), " " + want + "\n",
	} {
		got, err := ParsePin(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "sha256/", "sha256/abc", "md5/" + b64, hx[:62], "sha256/" + b64[:40] + "!!!="} {
		_, err := ParsePin(in)
		require.ErrorIs(t, err, ErrInvalidPin, in)
	}
}

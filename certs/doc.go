// Package certs provides the TLS 1.3 material used by quicmsg: development
// certificate authorities and leaf certificates, loading of PEM files with
// typed errors, public key pinning, certificate hot reloading, and builders
// for [crypto/tls.Config] values suitable for QUIC.
//
// # Development certificates
//
// [EnsureDev] maintains a small ECDSA P-256 certificate authority and a server
// certificate in a directory (by default [DefaultDevDir]). It reuses existing
// files while they are valid and cover the requested hosts, and regenerates
// them otherwise. [NewDevClientCert] issues client certificates from the same
// authority for mutual TLS. The lower-level [GenerateCA], [GenerateLeaf] and
// [KeyPair.WriteFiles] allow custom setups and tests.
//
// # Loading
//
// [LoadKeyPair] and [LoadCAPool] read PEM files. Failures are reported as a
// [*FileError] naming the file, wrapping one of the sentinel errors
// ([ErrNotPEM], [ErrNoCertificates], [ErrNoPrivateKey], [ErrKeyMismatch],
// [ErrExpired], [ErrNotYetValid]) or an [io/fs] error, so callers can use
// [errors.Is] and [errors.As] instead of matching strings.
//
// # TLS configuration
//
// [ServerConfig] and [ClientConfig] build configurations that always require
// TLS 1.3. A client authenticates the server by certificate chain (CAFile or
// RootCAs, or the system roots), by public key pin (PinSHA256), or both. With a
// pin and no roots, chain verification is replaced by the pin check plus a
// validity period check, which suits self-signed certificates. A server
// requires client certificates (mutual TLS) when ClientCAFile or ClientCAs is
// set.
//
// # Public key pins
//
// A pin is the SHA-256 digest of a certificate's DER-encoded
// SubjectPublicKeyInfo. [PublicKeyPin] formats it as "sha256/" followed by
// standard, padded base64, like the pins of HPKP and curl's --pinnedpubkey.
// [ParsePin] also accepts the curl form "sha256//<base64>", unpadded base64,
// and 64 hexadecimal digits (optionally colon separated), each with or
// without the "sha256/" prefix. Pins survive certificate renewal as long as
// the key pair is kept.
package certs

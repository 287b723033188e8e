package session

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// checksummed builds message i of a channel: index, SHA-256 of the body, body.
func checksummed(name string, i int) []byte {
	body := bytes.Repeat([]byte(name), 1+i%50)
	sum := sha256.Sum256(body)
	b := binary.BigEndian.AppendUint32(nil, uint32(i))
	b = append(b, sum[:]...)
	return append(b, body...)
}

func verifyChecksummed(msg []byte, want int) error {
	if len(msg) < 36 {
		return fmt.Errorf("message %d too short: %d bytes", want, len(msg))
	}
	if got := int(binary.BigEndian.Uint32(msg)); got != want {
		return fmt.Errorf("message %d arrived in place of %d", got, want)
	}
	if sha256.Sum256(msg[36:]) != [32]byte(msg[4:36]) {
		return fmt.Errorf("message %d corrupted", want)
	}
	return nil
}

package main

import "math/bits"

// seqSetMax bounds the sequence numbers a seqSet records: 32 MiB of bits
// per receiving channel. Numbers above it are counted as unchecked.
const seqSetMax = 1 << 28

// seqSet is the set of sequence numbers one receiver got on one channel,
// for the duplicate check of -group. It is owned by the receiver's reader
// until the readers have ended.
type seqSet struct {
	bits      []uint64
	dups      uint64 // numbers this receiver got more than once
	unchecked uint64 // numbers at or above seqSetMax
}

// add records seq.
func (s *seqSet) add(seq uint64) {
	if seq >= seqSetMax {
		s.unchecked++
		return
	}
	w := int(seq / 64)
	if w >= len(s.bits) {
		s.bits = append(s.bits, make([]uint64, max(w+1-len(s.bits), len(s.bits)))...)
	}
	m := uint64(1) << (seq % 64)
	if s.bits[w]&m != 0 {
		s.dups++
	}
	s.bits[w] |= m
}

// duplicates returns how many deliveries of the sets' channel repeated a
// sequence number that a set, the same or another, had already recorded,
// and how many numbers were not checked.
func duplicates(sets []*seqSet) (dups, unchecked uint64) {
	var union []uint64
	var each int
	for _, s := range sets {
		dups += s.dups
		unchecked += s.unchecked
		if len(s.bits) > len(union) {
			union = append(union, make([]uint64, len(s.bits)-len(union))...)
		}
		for i, w := range s.bits {
			each += bits.OnesCount64(w)
			union[i] |= w
		}
	}
	all := 0
	for _, w := range union {
		all += bits.OnesCount64(w)
	}
	return dups + uint64(each-all), unchecked
}

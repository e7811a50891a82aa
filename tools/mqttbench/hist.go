package main

import (
	"math"
	"math/bits"
)

// histogram is a fixed-size log-linear histogram in the spirit of HDR
// Histogram: values below 2^histSubBits are counted exactly, larger ones in
// buckets whose width is 1/2^histSubBits of their power of two (under 1.6 %
// relative error with 6 bits). Recording is a few integer operations and
// never allocates, so every subscriber goroutine owns one and they are
// merged once at the end instead of sharing a lock per message.
type histogram struct {
	counts   [histBuckets]uint64
	n        uint64
	sum      float64
	min, max int64
}

const (
	histSubBits = 6
	histSub     = 1 << histSubBits
	// One block of histSub buckets for [0, histSub), then one block for
	// each power of two [2^k, 2^(k+1)) with k from histSubBits to 62.
	histBuckets = (64 - histSubBits) * histSub
)

func histIndex(v int64) int {
	if v < histSub {
		if v < 0 {
			return 0 // clock oddities are clamped rather than dropped
		}
		return int(v)
	}
	u := uint64(v)
	shift := bits.Len64(u) - 1 - histSubBits
	return (shift+1)<<histSubBits + int(u>>uint(shift)) - histSub
}

// histUpper is the largest value that maps to bucket i.
func histUpper(i int) int64 {
	if i < histSub {
		return int64(i)
	}
	shift := i>>histSubBits - 1
	mant := uint64(i&(histSub-1)) + histSub
	return int64((mant+1)<<uint(shift) - 1)
}

func (h *histogram) record(v int64) {
	if v < 0 {
		v = 0
	}
	h.counts[histIndex(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
}

func (h *histogram) merge(o *histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// quantile returns the value at quantile q (0..1): the upper bound of the
// bucket holding the ceil(q*n)-th smallest value, clamped to the observed
// range so that p100 is the exact maximum.
func (h *histogram) quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			v := histUpper(i)
			if v > h.max {
				v = h.max
			}
			if v < h.min {
				v = h.min
			}
			return v
		}
	}
	return h.max
}

func (h *histogram) mean() float64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / float64(h.n)
}

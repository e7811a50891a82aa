//go:build !unix

package mqtt

// benchCPU has no getrusage to ask here: benchmarks report no CPU time.
func benchCPU() int64 { return 0 }

//go:build !unix

package cluster

// rusageCPU has no getrusage to ask here: measurements report no CPU time.
func rusageCPU() int64 { return 0 }

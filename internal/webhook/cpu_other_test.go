//go:build !unix

package webhook_test

import "testing"

// rusageCPU has no getrusage to ask here: benchmarks report no CPU time.
func rusageCPU(b *testing.B) int64 { return 0 }

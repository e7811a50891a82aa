// Package filelock takes and drops an exclusive, non-blocking lock on an open
// file, the one rule the store and the spool use to keep a second process
// out of their directory. The lock belongs to the open file, so the kernel
// drops it when the process dies, however it dies.
package filelock

//go:build !unix

package integration

// keepInheritedFDs does nothing here: the restart tests run on Linux.
func keepInheritedFDs() {}

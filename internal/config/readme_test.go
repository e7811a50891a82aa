package config

import (
	"os"
	"strings"
	"testing"
)

// The README's configuration reference is the generated table, line for
// line: a key added to the schema without updating the README fails here.
func TestReadmeReference(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var md strings.Builder
	if err := WriteReference(&md); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), md.String()) {
		t.Errorf("README.md's configuration reference differs from config.WriteReference; replace the table with:\n%s", md.String())
	}
}

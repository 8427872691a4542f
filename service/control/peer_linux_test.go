package control

import "testing"

func TestParseGroupsLine(t *testing.T) {
	status := []byte("Name:\tbash\nUid:\t1000\t1000\t1000\t1000\nGroups:\t4 24 27 1000 \nNSpid:\t1\n")
	got := parseGroupsLine(status)
	if len(got) != 4 || got[2] != 27 {
		t.Errorf("parseGroupsLine = %v", got)
	}
	if g := parseGroupsLine([]byte("Groups:\t\n")); len(g) != 0 {
		t.Errorf("empty groups: %v", g)
	}
}

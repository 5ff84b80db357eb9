package pubsub

import "testing"

func TestParsePosition(t *testing.T) {
	tests := []struct {
		in   string
		want Position
		ok   bool
	}{
		{"abc-1", Position{"abc", 1}, true},
		{"a_b-0", Position{"a_b", 0}, true},
		{"abc-18446744073709551615", Position{"abc", 1<<64 - 1}, true},
		{"abc", Position{}, false},
		{"-1", Position{}, false},
		{"abc-", Position{}, false},
		{"abc-+1", Position{}, false},
		{"abc--1", Position{}, false},
		{"a b-1", Position{}, false},
		{"abc-18446744073709551616", Position{}, false},
	}
	for _, tt := range tests {
		got, err := ParsePosition(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParsePosition(%q) = %v, %v", tt.in, got, err)
		}
		if tt.ok && got.String() != tt.in {
			t.Errorf("round trip %q → %q", tt.in, got.String())
		}
	}
}

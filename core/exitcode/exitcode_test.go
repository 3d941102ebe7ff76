package exitcode

import (
	"errors"
	"fmt"
	"testing"
)

func TestOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, OK},
		{"plain error is operational", errors.New("boom"), Operational},
		{"rejected", Rejectedf("no probe for %s", "s390x"), Rejected},
		{"usage", Usagef("bad flag"), Usage},
		{"wrapped keeps code", fmt.Errorf("checking: %w", Usagef("bad ref")), Usage},
		{"WithCode does not override", WithCode(Operational, Rejectedf("x")), Rejected},
		{"WithCode sets", WithCode(Usage, errors.New("x")), Usage},
	} {
		if got := Of(tc.err); got != tc.want {
			t.Errorf("%s: Of() = %d, want %d", tc.name, got, tc.want)
		}
	}
}

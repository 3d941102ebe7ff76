// Package exitcode defines the exit codes every crs-ci command uses and the error kinds that map to them.
//
//	0  passed
//	1  rejected: an incompatible image or an invalid policy (a verdict, not a tool failure)
//	2  usage or configuration error
//	3  operational error: registry, network, auth, I/O, corrupt image
//
// Engine packages wrap their errors with Rejected, Usage or Operational; anything unclassified is
// treated as operational (3), because an unknown failure is the tool's fault, never a verdict.
package exitcode

import (
	"errors"
	"fmt"
)

// The exit codes of every crs-ci command, on every CI platform.
const (
	OK          = 0
	Rejected    = 1
	Usage       = 2
	Operational = 3
)

// Error carries an exit code with an ordinary error.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func wrap(code int, format string, args ...any) error {
	return &Error{Code: code, Err: fmt.Errorf(format, args...)}
}

// Rejectedf returns an error for a verdict: the image or the policy was judged and failed.
func Rejectedf(format string, args ...any) error { return wrap(Rejected, format, args...) }

// Usagef returns an error for bad flags, arguments or configuration.
func Usagef(format string, args ...any) error { return wrap(Usage, format, args...) }

// Operationalf returns an error for a failure of the environment: registry, network, auth, I/O, corrupt input.
func Operationalf(format string, args ...any) error { return wrap(Operational, format, args...) }

// WithCode attaches code to err unless err already carries one.
func WithCode(code int, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return &Error{Code: code, Err: err}
}

// Of returns the exit code for err: 0 for nil, the code it carries, else Operational.
func Of(err error) int {
	if err == nil {
		return OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Operational
}

package main

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Exit codes of weir ctl, documented in ctlLong; scripts rely on them.
const (
	ctlExitOK           = 0
	ctlExitError        = 1
	ctlExitNotFound     = 2
	ctlExitChanges      = 3
	ctlExitPrecondition = 4
	ctlExitInvalid      = 5
	ctlExitDenied       = 6
	ctlExitUnreachable  = 7
	ctlExitNotSaved     = 8
)

// ctlError is a failed ctl command: the exit code it maps to and the
// message already printed on stderr. A nil err is a silent non-zero exit
// (diff found changes).
type ctlError struct {
	code int
	err  error
}

func (e *ctlError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *ctlError) Unwrap() error { return e.err }

// ctlInvalid marks a locally rejected argument, so that it exits like the
// server's InvalidArgument would.
func ctlInvalid(format string, args ...any) error {
	return &ctlError{code: ctlExitInvalid, err: fmt.Errorf(format, args...)}
}

// ctlExitCode reports the process exit code for err returned by the root
// command: a ctl command's own code, else 0 for nil and 1 for anything else
// (usage errors and other commands).
func ctlExitCode(err error) int {
	if err == nil {
		return ctlExitOK
	}
	var ce *ctlError
	if errors.As(err, &ce) {
		return ce.code
	}
	return ctlExitError
}

// ctlReported reports whether err was already printed by weir ctl, so main
// must not print it again.
func ctlReported(err error) bool {
	var ce *ctlError
	return errors.As(err, &ce)
}

// certificateHint returns what to check when ctl, talking TLS, reached
// weir's address but lost the connection (msg is why): weir refusing the
// client certificate looks so. Under TLS 1.3 a server checks the client's
// certificate after the client's handshake is done, so the client sees its
// refusal as the alert ("tls: certificate required") or as a broken pipe
// or a reset, whichever comes first: not certain enough for an exit code of
// its own, so it stays "cannot reach", with the hint.
func certificateHint(o *ctlOptions, msg string) string {
	switch {
	case !o.usesTLS(), strings.Contains(msg, "connection refused"):
		return ""
	case o.tlsCert == "":
		return " (if weir requires client certificates, --admin-client-ca, give --tls-cert and --tls-key)"
	}
	return " (if weir requires client certificates, --admin-client-ca, check that --tls-cert is signed by that CA and still valid)"
}

// ctlClassify maps err to its exit code and an operator-facing message: the
// server's own message, with a hint where the code alone says what to do.
func ctlClassify(err error, o *ctlOptions) *ctlError {
	var ce *ctlError
	if errors.As(err, &ce) {
		return ce
	}
	st, ok := status.FromError(err)
	if !ok {
		return &ctlError{code: ctlExitError, err: err}
	}
	msg := st.Message()
	code := ctlExitError
	switch st.Code() {
	case codes.NotFound:
		code = ctlExitNotFound
	case codes.FailedPrecondition:
		code = ctlExitPrecondition
	case codes.InvalidArgument:
		code = ctlExitInvalid
	case codes.Unauthenticated, codes.PermissionDenied:
		code = ctlExitDenied
		if o.tokenFile == "" {
			msg += " (no token sent: set --token-file or WEIR_TOKEN_FILE)"
		}
	case codes.Aborted: // weir answered: the operation could not be saved
		code = ctlExitNotSaved
		msg += "; nothing was applied: weir could not save its rollout state (see its log and --state-dir), retry once it can"
	case codes.Unavailable:
		code = ctlExitUnreachable
		msg = fmt.Sprintf("cannot reach weir at %s: %s%s", o.addr, msg, certificateHint(o, msg))
	case codes.DeadlineExceeded:
		code = ctlExitUnreachable
		msg = fmt.Sprintf("no answer from weir at %s within --timeout %s", o.addr, o.timeout)
	}
	return &ctlError{code: code, err: errors.New(msg)}
}

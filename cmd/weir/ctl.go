package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	adminv1 "github.com/weir-mesh/weir/policy/admin/v1"
)

// ctlDefaultAddr is where `weir serve` listens for the admin API by default.
const ctlDefaultAddr = "127.0.0.1:18001"

const ctlLong = `ctl drives rollouts and inspects the fleet through weir's admin API.

Connection: --addr (env WEIR_ADDR, default 127.0.0.1:18001). --token-file
(env WEIR_TOKEN_FILE) names a file whose first token is sent as
"authorization: Bearer TOKEN"; each line is "token" or "name:token", blank
lines and lines starting with # are skipped. Setting any of --tls-ca,
--tls-cert, --tls-key (env WEIR_TLS_CA, WEIR_TLS_CERT, WEIR_TLS_KEY) turns on
TLS, with --tls-cert and --tls-key as the client certificate for mTLS;
otherwise the connection is plaintext.

Output: human tables by default; -o json prints protobuf JSON (a JSON array
for lists), stable for scripts.

Exit codes:
  0  ok
  1  error reported by the server, or bad usage
  2  not found (unknown service)
  3  weir ctl diff: the candidate policies would change something
  4  failed precondition (e.g. promote with nothing in progress)
  5  invalid argument (from the server, or set-weights checked locally)
  6  unauthenticated or permission denied
  7  server unreachable, or no answer within --timeout
  8  weir could not save the operation, so applied nothing (retry)

Errors are printed on stderr prefixed "weir ctl: "; usage errors (an unknown
flag or subcommand, a missing --reason, a bad -o) are prefixed "weir: ".`

// ctlOptions holds the flags every ctl subcommand shares.
type ctlOptions struct {
	addr      string
	tokenFile string
	tlsCA     string
	tlsCert   string
	tlsKey    string
	output    string
	timeout   time.Duration
}

// ctlAction is one subcommand's work against a connected client.
type ctlAction func(ctx context.Context, cmd *cobra.Command, c adminv1.AdminServiceClient, args []string) error

func newCtlCommand() *cobra.Command {
	o := &ctlOptions{}
	cmd := &cobra.Command{
		Use:   "ctl",
		Short: "Drive rollouts and inspect the fleet through weir's admin API",
		Long:  ctlLong,
		// Runnable, so that cobra checks Args and refuses a mistyped
		// subcommand; a command without RunE prints its help for one and
		// exits 0.
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
		PersistentPreRunE: func(*cobra.Command, []string) error {
			if o.output != "table" && o.output != "json" {
				return fmt.Errorf("--output %q: want table or json", o.output)
			}
			if (o.tlsCert == "") != (o.tlsKey == "") {
				return errors.New("--tls-cert and --tls-key must be given together")
			}
			return nil
		},
	}
	f := cmd.PersistentFlags()
	f.StringVar(&o.addr, "addr", ctlEnvOr("WEIR_ADDR", ctlDefaultAddr), "admin API address (env WEIR_ADDR)")
	f.StringVar(&o.tokenFile, "token-file", os.Getenv("WEIR_TOKEN_FILE"), "file holding the bearer token (env WEIR_TOKEN_FILE)")
	f.StringVar(&o.tlsCA, "tls-ca", os.Getenv("WEIR_TLS_CA"), "CA bundle to verify the server (env WEIR_TLS_CA)")
	f.StringVar(&o.tlsCert, "tls-cert", os.Getenv("WEIR_TLS_CERT"), "client certificate for mTLS (env WEIR_TLS_CERT)")
	f.StringVar(&o.tlsKey, "tls-key", os.Getenv("WEIR_TLS_KEY"), "client key for mTLS (env WEIR_TLS_KEY)")
	f.StringVarP(&o.output, "output", "o", "table", "output format: table or json")
	f.DurationVar(&o.timeout, "timeout", 10*time.Second, "deadline for each request (get --watch runs until interrupted)")
	cmd.AddCommand(newCtlGetCommand(o), newCtlSetWeightsCommand(o))
	cmd.AddCommand(newCtlOperationCommands(o)...)
	cmd.AddCommand(newCtlProxiesCommand(o), newCtlDiffCommand(o), newCtlEventsCommand(o))
	return cmd
}

func ctlEnvOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// run adapts an action to cobra: it connects, runs the action (under
// --timeout when deadline is set) and turns any failure into a *ctlError
// that it reports on stderr, so main only has to pick the exit code.
func (o *ctlOptions) run(deadline bool, act ctlAction) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := o.runAction(cmd, args, deadline, act)
		if err == nil {
			return nil
		}
		ce := ctlClassify(err, o)
		if ce.err != nil {
			fmt.Fprintln(cmd.ErrOrStderr(), "weir ctl:", ce.err)
		}
		return ce
	}
}

func (o *ctlOptions) runAction(cmd *cobra.Command, args []string, deadline bool, act ctlAction) error {
	conn, err := o.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	if deadline && o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	return act(ctx, cmd, adminv1.NewAdminServiceClient(conn), args)
}

// dial creates the client; grpc connects lazily, so an unreachable server
// shows up as Unavailable on the first call.
func (o *ctlOptions) dial() (*grpc.ClientConn, error) {
	creds, err := o.transportCredentials()
	if err != nil {
		return nil, err
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if o.tokenFile != "" {
		tok, err := ctlReadToken(o.tokenFile)
		if err != nil {
			return nil, err
		}
		opts = append(opts, grpc.WithPerRPCCredentials(ctlBearer(tok)))
	}
	conn, err := grpc.NewClient(o.addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("--addr %q: %w", o.addr, err)
	}
	return conn, nil
}

// usesTLS reports whether ctl talks TLS: any of --tls-ca, --tls-cert and
// --tls-key turns it on.
func (o *ctlOptions) usesTLS() bool { return o.tlsCA != "" || o.tlsCert != "" || o.tlsKey != "" }

func (o *ctlOptions) transportCredentials() (credentials.TransportCredentials, error) {
	if !o.usesTLS() {
		return insecure.NewCredentials(), nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.tlsCA != "" {
		pem, err := os.ReadFile(o.tlsCA)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-ca %s: no PEM certificate found", o.tlsCA)
		}
	}
	if o.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return credentials.NewTLS(cfg), nil
}

// ctlReadToken returns the first token in path: the first line that is not
// blank or a # comment, either "token" or "name:token".
func ctlReadToken(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		if _, tok, ok := strings.Cut(text, ":"); ok {
			text = strings.TrimSpace(tok)
		}
		if text == "" {
			return "", fmt.Errorf("--token-file %s:%d: empty token; want \"token\" or \"name:token\"", path, line)
		}
		return text, nil
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("--token-file %s: %w", path, err)
	}
	return "", fmt.Errorf("--token-file %s: no token found; want a line \"token\" or \"name:token\"", path)
}

// ctlBearer sends the token as "authorization: Bearer TOKEN" on every call.
type ctlBearer string

func (b ctlBearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

// RequireTransportSecurity is false because the admin API accepts a token
// over plaintext on loopback (weir serve refuses to listen beyond loopback
// without TLS); pass --tls-ca to reach a remote weir.
func (ctlBearer) RequireTransportSecurity() bool { return false }

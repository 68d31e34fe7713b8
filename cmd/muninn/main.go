// Command muninn is MuninnDB: `muninn start` runs a node (standalone by
// default, a cluster member with cluster.enabled), and `muninn cluster ...`
// inspects and operates a running cluster through its REST API. See
// docs/cli.md.
package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"

	"strings"
	"time"

	"github.com/alecthomas/kong"
	"github.com/lmittmann/tint"

	"github.com/muninndb/muninn/shell/client"
	"github.com/muninndb/muninn/shell/mbp"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3". The
// linker needs the variable; mbp.BinaryVersion reads the flag back from the
// build settings, so `muninn version` and the MBP hello say the same.
var version = "dev"

var _ = version

// CLI is the command line.
type CLI struct {
	LogFormat string `help:"Log format: auto (colored text on a terminal, JSON otherwise), text or json. For start, overrides log_format." enum:"auto,text,json," default:"" placeholder:"auto"`
	LogLevel  string `help:"Log level: debug, info, warn or error. For start, overrides log_level." enum:"debug,info,warn,error," default:"" placeholder:"info"`

	Start   StartCmd   `cmd:"" help:"Run a MuninnDB node (standalone by default; cluster mode from the config)."`
	Cluster ClusterCmd `cmd:"" help:"Inspect and operate a cluster through a node's API."`
	Bench   BenchCmd   `cmd:"" help:"Measure throughput, latency, replication lag and failover time (see docs/benchmarks.md)."`
	Backup  BackupCmd  `cmd:"" help:"Take a backup of a node (online, or from a stopped node's data directory), or verify one (docs/backup.md)."`
	Restore RestoreCmd `cmd:"" help:"Restore a backup into a new data directory, as a standalone node (docs/backup.md)."`
	Version VersionCmd `cmd:"" help:"Print the version."`
}

// Globals is what every command gets: where to write, and the process's
// environment.
type Globals struct {
	Out  io.Writer
	Err  io.Writer
	Env  []string
	cli  *CLI
	clus *ClusterCmd
	// stop, when set, replaces OS signals for start (tests).
	stop <-chan struct{}
}

// usageError marks an error in how the command was invoked (exit 2).
type usageError struct{ error }

// Exit statuses (docs/cli.md).
const (
	exitFailure = 1 // refused, unreachable, degraded: nothing was changed
	exitUsage   = 2 // bad command line
	// exitUnknown: a command that changes the cluster may or may not have
	// taken effect (client.ErrAmbiguous).
	exitUnknown = 3
)

type exitPanic struct{ code int }

// run runs the command line args and returns the exit code.
func run(args []string, stdout, stderr io.Writer, env []string) int {
	return runWith(args, stdout, stderr, env, nil)
}

// runWith is run with stop replacing SIGINT/SIGTERM for start (tests).
func runWith(args []string, stdout, stderr io.Writer, env []string, stop <-chan struct{}) (code int) {
	var cli CLI
	g := &Globals{Out: stdout, Err: stderr, Env: env, cli: &cli, stop: stop}
	defer func() {
		if v := recover(); v != nil {
			if e, ok := v.(exitPanic); ok {
				code = e.code
				return
			}
			panic(v)
		}
	}()
	parser, err := kong.New(&cli,
		kong.Name("muninn"),
		kong.Description("MuninnDB: a memory database with high-availability clustering."),
		kong.Writers(stdout, stderr),
		kong.Exit(func(c int) { panic(exitPanic{c}) }),
		kong.Bind(g),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
	)
	if err != nil {
		fmt.Fprintf(stderr, "muninn: %v\n", err)
		return 2
	}
	kctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "muninn: %v\n", err)
		var pe *kong.ParseError
		if errors.As(err, &pe) {
			fmt.Fprintf(stderr, "Run `%s --help` for usage.\n", strings.TrimSpace("muninn "+commandPath(pe.Context)))
		}
		return 2
	}
	if err := kctx.Run(g); err != nil {
		fmt.Fprintf(stderr, "muninn: %v\n", err)
		var ue usageError
		switch {
		case errors.As(err, &ue):
			return exitUsage
		case errors.Is(err, client.ErrAmbiguous):
			return exitUnknown
		}
		return exitFailure
	}
	return 0
}

func commandPath(ctx *kong.Context) string {
	if ctx == nil {
		return ""
	}
	var out []string
	for _, w := range strings.Fields(ctx.Command()) {
		if strings.HasPrefix(w, "<") {
			break
		}
		out = append(out, w)
	}
	return strings.Join(out, " ")
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, os.Environ()))
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// newLogger builds the process logger: tint (colored text) when format is
// "text", or "auto" and stderr is a terminal; JSON otherwise.
func newLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	term := false
	if f, ok := w.(*os.File); ok {
		term = isTerminal(f)
	}
	if format == "text" || (format == "auto" || format == "") && term {
		return slog.New(tint.NewHandler(w, &tint.Options{Level: level, TimeFormat: time.DateTime, NoColor: !term}))
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// VersionCmd prints the version.
type VersionCmd struct{}

func (VersionCmd) Run(g *Globals) error {
	fmt.Fprintln(g.Out, versionString())
	return nil
}

func versionString() string {
	// One source for the version: the MBP hello carries the same string
	// (mbp.BinaryVersion reads -X main.version from the build settings).
	return fmt.Sprintf("%s %s %s/%s", mbp.BinaryVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// FieldError is one configuration problem. Msg is the whole message: the
// key, the value (never a secret's), where it came from and the fix.
type FieldError struct {
	// Key is the dotted key path, or the unknown key, environment variable
	// or flag as given.
	Key string
	Msg string
}

func (e *FieldError) Error() string { return e.Msg }

// Load reads the configuration: the built-in defaults, overridden by the
// YAML file at path (none when path is ""), overridden by the MUNINN_*
// variables in env (os.Environ() form, "NAME=value"), overridden by flags
// (keyed by dotted key path, e.g. "cluster.node_id", "data_dir"). It then
// fills the derived fields (cluster.advertise_addr, advertise_http) and
// validates the result. The error joins every problem found (see
// FieldError); the returned Config is the zero Config when err != nil.
//
// Unknown keys, unknown MUNINN_* variables (except MUNINN_ADDR and
// MUNINN_CONFIG, which belong to the command-line tool) and unknown flag
// keys are errors. An empty environment variable counts as unset.
func Load(path string, env []string, flags map[string]string) (Config, error) {
	var data []byte
	if path != "" {
		b, err := readFile(path)
		if err != nil {
			return Config{}, err
		}
		data = b
	}
	return Parse(path, data, env, flags)
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, &FieldError{Key: "config", Msg: fmt.Sprintf("config file %s does not exist: check the --config path (or MUNINN_CONFIG)", path)}
		}
		return nil, &FieldError{Key: "config", Msg: fmt.Sprintf("config file %s cannot be read: %v", path, err)}
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, &FieldError{Key: "config", Msg: fmt.Sprintf("config file %s cannot be read: %v", path, err)}
	}
	if len(b) > MaxFileSize {
		return nil, &FieldError{Key: "config", Msg: fmt.Sprintf("config file %s is larger than %d bytes: is it the right file?", path, MaxFileSize)}
	}
	return b, nil
}

// Parse is Load with the file's content given: name is used in messages,
// and a nil data means no file.
func Parse(name string, data []byte, env []string, flags map[string]string) (Config, error) {
	l := &loader{c: Default(), from: map[string]string{}, name: name, secrets: secretInputs(data, env, flags)}
	if name == "" {
		l.name = "the config file"
	}
	if data != nil {
		l.file(data)
	}
	l.env(env)
	l.flags(flags)
	if len(l.errs) > 0 {
		return Config{}, l.err()
	}
	l.c.resolve()
	if errs := l.c.validate(l.from, l.secrets); len(errs) > 0 {
		l.errs = append(l.errs, errs...)
		return Config{}, l.err()
	}
	return l.c, nil
}

type loader struct {
	c       Config
	name    string
	from    map[string]string // key path -> where its value came from
	errs    []*FieldError
	secrets []string // secret values given, never shown (see user)
}

func (l *loader) fail(key, format string, a ...any) {
	l.errs = append(l.errs, &FieldError{Key: key, Msg: fmt.Sprintf(format, a...)})
}

// err joins the errors.
func (l *loader) err() error {
	out := make([]error, 0, len(l.errs))
	for _, e := range l.errs {
		out = append(out, e)
	}
	return errors.Join(out...)
}

// user returns a piece of text the user gave (a value, an unknown key or
// variable name, a parser message quoting the input) as it may appear in a
// message: "[REDACTED]" when it holds a secret value (see redactValue).
func (l *loader) user(s string) string { return redactValue(s, l.secrets) }

// redactValue returns s, or "[REDACTED]" when s is a secret value or, for a
// secret of 4 bytes or more, contains one. Redaction applies to the values
// the user gave, as a whole, never to substrings of the messages built
// around them: replacing a short secret inside a message ("is too
// [REDACTED]") would reveal it.
func redactValue(s string, secrets []string) string {
	for _, sec := range secrets {
		if sec == "" {
			continue
		}
		if s == sec || (len(sec) >= 4 && strings.Contains(s, sec)) {
			return redacted
		}
	}
	return s
}

// secretInputs lists the secret values given anywhere (file, environment,
// flags) before any message is built, so that a message about one source
// can redact a secret given in another.
func secretInputs(data []byte, env []string, flags map[string]string) []string {
	out := roughSecrets(data)
	for _, kv := range env {
		name, val, _ := strings.Cut(kv, "=")
		if k := byEnv[name]; k != nil && k.secret && val != "" {
			out = append(out, val, strings.TrimSpace(val))
		}
	}
	for n, v := range flags {
		if k := byPath[n]; k != nil && k.secret && v != "" {
			out = append(out, v, strings.TrimSpace(v))
		}
	}
	return out
}

// ---- the file ----

func (l *loader) file(data []byte) {
	if len(data) > MaxFileSize {
		l.fail("config", "%s is larger than %d bytes: is it the right file?", l.name, MaxFileSize)
		return
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := safeDecode(dec, &doc); err != nil {
		if err == io.EOF {
			return // empty file: defaults
		}
		l.fail("config", "%s is not valid YAML: %s", l.name, l.yamlMsg(err))
		return
	}
	var extra yaml.Node
	if err := safeDecode(dec, &extra); err != io.EOF {
		if err != nil {
			l.fail("config", "%s is not valid YAML: %s", l.name, l.yamlMsg(err))
		} else {
			l.fail("config", "%s holds more than one YAML document (a second starts at line %d): keep one", l.name, extra.Line)
		}
		return
	}
	if len(doc.Content) == 0 {
		return
	}
	root := deref(doc.Content[0])
	if isNull(root) {
		return
	}
	if root.Kind != yaml.MappingNode {
		l.fail("config", "%s must be a mapping of keys (data_dir: ..., cluster: ...), found %s at line %d", l.name, kindName(root), root.Line)
		return
	}
	l.walk(root, "")
}

// safeDecode turns a parser panic into an error: a config file must never
// crash the node.
func safeDecode(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("parser failure: %v", r)
		}
	}()
	return dec.Decode(n)
}

// yamlMsg is a parser error for a message. The parser may quote the input,
// so a message holding a secret value is redacted (keeping its line number).
func (l *loader) yamlMsg(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if l.user(msg) == msg {
		return msg
	}
	if line, _, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(line, "line ") && l.user(line) == line {
		return line + ": " + redacted + " (the parser's message quoted a secret value)"
	}
	return redacted + " (the parser's message quoted a secret value)"
}

// roughSecrets finds what look like secret values in a file that may not
// parse, so that a parser message quoting them can be scrubbed.
func roughSecrets(data []byte) []string {
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		t := strings.TrimSpace(line)
		for _, k := range []string{"cluster_secret:", "cluster_secret_previous:", "admin_token:"} {
			if v, ok := strings.CutPrefix(t, k); ok {
				v = strings.TrimSpace(v)
				if i := strings.Index(v, " #"); i >= 0 {
					v = strings.TrimSpace(v[:i])
				}
				v = strings.Trim(v, `"'`)
				if v != "" {
					out = append(out, v)
				}
			}
		}
	}
	return out
}

func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && n.Alias != nil && i < 64; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return "a single value"
	case yaml.AliasNode:
		return "an alias"
	}
	return "nothing"
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

func (l *loader) at(line int) string { return fmt.Sprintf("line %d of %s", line, l.name) }

func (l *loader) walk(m *yaml.Node, prefix string) {
	seen := map[string]int{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		kn, vn := deref(m.Content[i]), deref(m.Content[i+1])
		if kn == nil || kn.Kind != yaml.ScalarNode {
			line := m.Line
			if kn != nil {
				line = kn.Line
			}
			l.fail(prefix, "a key at %s is %s, not a name: keys are plain words like data_dir", l.at(line), kindName(kn))
			continue
		}
		name := kn.Value
		full := join(prefix, name)
		if name == "<<" {
			l.fail(full, "merge key << at %s is not supported: write the keys out", l.at(kn.Line))
			continue
		}
		if first, dup := seen[name]; dup {
			l.fail(l.user(full), "duplicate key %s at %s (first set at line %d): keep one", shorten(l.user(full)), l.at(kn.Line), first)
			continue
		}
		seen[name] = kn.Line
		if sections[full] {
			switch {
			case isNull(vn):
			case vn.Kind == yaml.MappingNode:
				l.walk(vn, full)
			default:
				l.fail(full, "%s at %s must be a mapping of keys, found %s", full, l.at(kn.Line), kindName(vn))
			}
			continue
		}
		k := byPath[full]
		if k == nil {
			msg := fmt.Sprintf("unknown key %s at %s", shorten(l.user(full)), l.at(kn.Line))
			if s := suggestKey(full); s != "" {
				msg += "; did you mean " + s + "?"
			} else {
				msg += "; see docs/configuration.md for the keys"
			}
			l.fail(l.user(full), "%s", msg)
			continue
		}
		if isNull(vn) {
			continue // "key:" with no value keeps the default
		}
		src := l.at(vn.Line)
		if list, ok := k.ptr(&l.c).(*[]string); ok && vn.Kind == yaml.SequenceNode {
			var items []string
			okAll := true
			for _, it := range vn.Content {
				it = deref(it)
				if it == nil || it.Kind != yaml.ScalarNode || isNull(it) {
					line := vn.Line
					if it != nil {
						line = it.Line
					}
					l.fail(full, "%s at %s must be a list of host:port strings, found %s in it: write each as \"10.0.1.11:8474\"", full, l.at(line), kindName(it))
					okAll = false
					break
				}
				items = append(items, strings.TrimSpace(it.Value))
			}
			if okAll {
				*list = items
				l.from[full] = src
			}
			continue
		}
		if vn.Kind != yaml.ScalarNode {
			l.fail(full, "%s at %s must be %s, found %s", full, src, want(k), kindName(vn))
			continue
		}
		l.set(k, vn.Value, src)
	}
}

func shorten(s string) string {
	if len(s) > 80 {
		return strconv.Quote(s[:80] + "...")
	}
	return s
}

// want describes what a key's value must be.
func want(k *key) string {
	switch k.ptr(&Config{}).(type) {
	case *bool:
		return "true or false"
	case *int:
		if k.unit == "" {
			return "a whole number"
		}
		return "a whole number of " + k.unit
	case *float64:
		return "a number"
	case *[]string:
		return "a list of host:port strings"
	}
	return "a single string"
}

// show is how a raw value appears in a message: quoted and cut short, not
// at all for a secret, and redacted when it holds a secret value.
func (l *loader) show(k *key, raw string) string {
	if k.secret {
		return k.path
	}
	if l.user(raw) != raw {
		return k.path + " = " + redacted
	}
	if len(raw) > 80 {
		raw = raw[:80] + "..."
	}
	return k.path + " = " + strconv.Quote(raw)
}

// set assigns a textual value (a YAML scalar, an environment variable or a
// flag) to a key.
func (l *loader) set(k *key, raw, src string) {
	if k.secret {
		l.secrets = append(l.secrets, raw)
	}
	bad := func(format string, a ...any) {
		l.fail(k.path, "%s (%s) %s", l.show(k, raw), src, fmt.Sprintf(format, a...))
	}
	switch p := k.ptr(&l.c).(type) {
	case *string:
		*p = raw
	case *bool:
		b, err := strconv.ParseBool(strings.TrimSpace(raw))
		if err != nil {
			bad("is not a boolean: write true or false")
			return
		}
		*p = b
	case *int:
		t := strings.TrimSpace(raw)
		n, err := strconv.Atoi(t)
		if errors.Is(err, strconv.ErrRange) {
			bad("is far too large: see docs/configuration.md for the range of %s", k.path)
			return
		}
		if err != nil {
			def := *k.ptr(ptrDefault()).(*int)
			hint := ""
			if _, derr := time.ParseDuration(t); derr == nil {
				hint = "duration units are not accepted; "
			}
			what := "the number of " + k.unit
			if k.unit == "" {
				what = "a whole number"
			}
			bad("is not a whole number: %swrite %s, e.g. %d", hint, what, def)
			return
		}
		*p = n
	case *float64:
		f, err := strconv.ParseFloat(strings.TrimSpace(raw), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			bad("is not a number: write a decimal like %g", *k.ptr(ptrDefault()).(*float64))
			return
		}
		*p = f
	case *[]string:
		*p = splitList(raw)
	}
	l.from[k.path] = src
}

func ptrDefault() *Config { d := Default(); return &d }

// splitList reads a comma-separated list, trimming spaces and dropping
// empty items ("a:8474, b:8474," is two seeds).
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// ---- environment and flags ----

func (l *loader) env(env []string) {
	for _, kv := range env {
		name, val, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "MUNINN_") || cliEnv[name] {
			continue
		}
		k := byEnv[name]
		if k == nil {
			msg := "unknown environment variable " + shorten(l.user(name))
			if s := suggestEnv(name); s != "" {
				msg += "; did you mean " + s + "?"
			} else {
				msg += ": unset it (see docs/configuration.md for the MUNINN_* variables)"
			}
			l.fail(l.user(name), "%s", msg)
			continue
		}
		if val == "" {
			continue // empty counts as unset
		}
		l.set(k, val, "from "+name)
	}
}

func (l *loader) flags(flags map[string]string) {
	names := make([]string, 0, len(flags))
	for n := range flags {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		k := byPath[n]
		if k == nil {
			shown := strconv.Quote(n)
			if l.user(n) != n {
				shown = redacted
			}
			msg := "unknown flag key " + shown
			if s := suggestKey(n); s != "" {
				msg += "; did you mean " + s + "?"
			} else {
				msg += ": flags are keyed by dotted key path, e.g. cluster.node_id"
			}
			l.fail(l.user(n), "%s", msg)
			continue
		}
		l.set(k, flags[n], "from flag "+n)
	}
}

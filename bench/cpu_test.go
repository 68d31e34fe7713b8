package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const exposition = `# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.34
# HELP muninn_role 1 for the node's current role.
# TYPE muninn_role gauge
muninn_role{role="cortex"} 1
muninn_role{ role = "lobe" } 0
go_gc_duration_seconds{quantile="0.5"} 2.1e-05
muninn_write_seconds_bucket{durability="quorum",le="+Inf"} 1027
weird{msg="a } b \" c",x="y"} -Inf 1712345678000

process_start_time_seconds 1.7e+09
`

// TestParseMetrics: the text exposition format, with labels (spaces and
// quoted braces inside), exponents, infinities and timestamps.
func TestParseMetrics(t *testing.T) {
	m, err := ParseMetrics(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"process_cpu_seconds_total":                                  12.34,
		`muninn_role{role="cortex"}`:                                 1,
		`muninn_role{role="lobe"}`:                                   0,
		`go_gc_duration_seconds{quantile="0.5"}`:                     2.1e-05,
		`muninn_write_seconds_bucket{durability="quorum",le="+Inf"}`: 1027,
		"process_start_time_seconds":                                 1.7e9,
	}
	for k, v := range want {
		if got, ok := m[k]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	if v, ok := m[`weird{msg="a } b \" c",x="y"}`]; !ok || v > -1e308 {
		t.Errorf("quoted braces and -Inf: %v %v (%v)", v, ok, m)
	}
	if len(m) != 7 {
		t.Errorf("%d series: %v", len(m), m)
	}
	for _, bad := range []string{"process_cpu_seconds_total\n", "x{a=\"b\" 1\n", "x one\n", "{a=\"b\"} 1\n", "x 1 2 3\n"} {
		if _, err := ParseMetrics(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// TestScrapeCPU reads the counter over HTTP and names what is wrong when
// it cannot; finish turns two readings into CPU per write.
func TestScrapeCPU(t *testing.T) {
	cpu := "process_cpu_seconds_total 1.5\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/metrics":
			w.Write([]byte(cpu))
		case "/bare/metrics":
			w.Write([]byte("go_goroutines 7\n"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	if v, err := ScrapeCPU(ctx, srv.Client(), srv.URL, ""); err != nil || v != 1.5 {
		t.Fatalf("%v %v", v, err)
	}
	if _, err := ScrapeCPU(ctx, srv.Client(), srv.URL+"/bare", ""); err == nil || !strings.Contains(err.Error(), "no process_cpu_seconds_total") {
		t.Fatalf("missing counter: %v", err)
	}
	if _, err := ScrapeCPU(ctx, srv.Client(), srv.URL+"/nope", ""); err == nil || !strings.Contains(err.Error(), "HTTP 404") {
		t.Fatalf("404: %v", err)
	}

	p := startCPU(ctx, srv.Client(), "", []cpuTarget{{"a", "cortex", srv.URL}, {"b", "lobe", srv.URL + "/nope"}})
	cpu = "process_cpu_seconds_total 2.5\n"
	r := p.finish(ctx, 4000, 5000)
	a, b := r.Nodes[0], r.Nodes[1]
	if a.Error != "" || a.CPUSeconds != 1 || a.CPUUsPerWrite != 250 || a.CPUUsPerOp != 200 || a.Role != "cortex" {
		t.Fatalf("a: %+v", a)
	}
	if b.Error == "" || b.CPUSeconds != 0 {
		t.Fatalf("b: %+v", b)
	}
	if r.Client == nil || r.Client.CPUSeconds < 0 {
		t.Fatalf("client: %+v", r.Client)
	}
	// A process restarted in between: its counter went down.
	p = startCPU(ctx, srv.Client(), "", []cpuTarget{{"a", "cortex", srv.URL}})
	cpu = "process_cpu_seconds_total 0.1\n"
	if r := p.finish(ctx, 1, 1); !strings.Contains(r.Nodes[0].Error, "restarted") {
		t.Fatalf("restart: %+v", r.Nodes[0])
	}
	var sb strings.Builder
	r.writeText(&sb)
	for _, want := range []string{"CPU per node", "CPU µs/write", "CPU µs/op", "250", "200", "b: GET"} {
		if !strings.Contains(sb.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, sb.String())
		}
	}
}

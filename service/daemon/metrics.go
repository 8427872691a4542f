package daemon

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"tcpinc.dev/tcpinc/service/version"
)

// Metrics answers tcpinc metrics and GET /metrics: the Prometheus text
// exposition format 0.0.4. Every counter becomes a tcpinc_<name> series;
// since the backends' counter sets differ by platform and mode they are
// typed "untyped" except where the name says they only grow.
func (d *Daemon) Metrics() (string, error) {
	d.metricsScrapes.Add(1)
	st, err := d.Status()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	gauge := func(name, help string, v any) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n%s %v\n", name, help, name, name, v)
	}
	fmt.Fprintf(&b, "# HELP tcpinc_build_info tcpincd's version and capture mode.\n# TYPE tcpinc_build_info gauge\n")
	fmt.Fprintf(&b, "tcpinc_build_info{version=%q,mode=%q} 1\n", labelValue(version.String()), labelValue(st.Mode))
	gauge("tcpinc_up", "1 while tcpincd captures connections.", b2i(st.Running))
	gauge("tcpinc_capture_unavailable", "1 while tcpincd runs without capture because it cannot start it (see tcpinc status).", b2i(st.CaptureError != ""))
	gauge("tcpinc_enabled", "1 when new connections are offered encryption (tcpinc up), 0 after tcpinc down.", b2i(st.Enabled))
	fmt.Fprintf(&b, "# HELP tcpinc_connections Connections tcpincd tracks, by state.\n# TYPE tcpinc_connections gauge\n")
	other := st.Conns - st.Encrypted - st.Plain
	fmt.Fprintf(&b, "tcpinc_connections{state=\"encrypted\"} %d\n", st.Encrypted)
	fmt.Fprintf(&b, "tcpinc_connections{state=\"plain\"} %d\n", st.Plain)
	fmt.Fprintf(&b, "tcpinc_connections{state=\"other\"} %d\n", other)
	for _, name := range slices.Sorted(maps.Keys(st.Counters)) {
		m := "tcpinc_" + metricName(name)
		fmt.Fprintf(&b, "# TYPE %s untyped\n%s %d\n", m, m, st.Counters[name])
	}
	return b.String(), nil
}

func b2i(v bool) int {
	if v {
		return 1
	}
	return 0
}

// metricName keeps [a-zA-Z0-9_] and turns anything else into _.
func metricName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, s)
}

// labelValue drops what %q would escape differently from Prometheus
// (which knows only \\, \" and \n).
func labelValue(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return -1
		}
		return r
	}, s)
}

func (d *Daemon) metricsMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		text, err := d.Metrics()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Write([]byte(text))
	})
	return mux
}

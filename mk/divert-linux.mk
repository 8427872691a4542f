# Linux divert backend: measuring (root; namespaces tcip-pa-<pid> and
# tcip-pb-<pid>, removed on exit). See docs/divert-linux.md.
.PHONY: perf-divert
perf-divert:
	scripts/perf-divert.sh

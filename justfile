# Thin wrappers around the plain commands; nothing depends on just.

test:
    go test ./...

ci:
    bash .ci/run

sim seeds="500":
    go run ./cmd/muninn-sim run --seeds {{seeds}}

replay seed:
    go run ./cmd/muninn-sim replay --seed {{seed}} --trace

scenarios-rewrite:
    go test ./core -run TestScenarios -rewrite

fuzz target="FuzzStep" time="5m":
    go test ./fuzz -run '^$' -fuzz '^{{target}}$' -fuzztime {{time}}

# pbxd — the README's two commands are scripts/run and scripts/test; these
# targets are shortcuts for day-to-day work. `make help` lists them.
.PHONY: help run test bench fuzz lint generate
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'
run: ## run pbxd with its embedded defaults
	scripts/run
test: ## run every test under the race detector (installs what is missing)
	scripts/test
bench: ## in-process benchmarks (needs PBXD_TEST_DATABASE_URL or a local PostgreSQL)
	go test -run '^$$' -bench . -benchtime 1x ./provisioning/ ./sip/ ./billing/
	@echo "load harnesses: bench/registrar/run.sh, go test ./bench/billing -bench Renewal -benchtime 1x, go test ./bench/asterisk -bench . -benchtime 1x"
fuzz: ## fuzz every target for 30 s each
	@for p in $$(go list ./...); do for f in $$(go test -list '^Fuzz' $$p 2>/dev/null | grep ^Fuzz); do \
		echo "$$p $$f"; go test -run '^$$' -fuzz "^$$f$$" -fuzztime 30s $$p || exit 1; done; done
lint: ## vet, golangci-lint and gofmt
	go vet ./...
	go tool -modfile=tools/lint/go.mod golangci-lint run ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
generate: ## regenerate the data-access code with the sqlc pinned in go.mod, check it, record internal/store/sqlc.sum
	CGO_ENABLED=0 go tool sqlc -f internal/store/sqlc.yaml generate
	go test ./internal/store -run '^TestGeneratedUpToDate$$' -count=1 -args -regenerate

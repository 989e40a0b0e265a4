# make check: gofmt, vet, staticcheck, race tests (CI also runs fuzz.sh). make test: the README's test command.
GO ?= go

.PHONY: all build test check fmt-check vet race staticcheck fuzz bench

all: build

build:
	$(GO) build -o blowback ./cmd/blowback

test:
	$(GO) test ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

race:
	$(GO) test -race -shuffle=on ./...

staticcheck:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

check: fmt-check vet staticcheck race

# Short fuzz runs of every fuzz target (FUZZTIME per target).
FUZZTIME ?= 20s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

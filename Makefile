# SESPCLSwitch — see README.md. Every target installs what it needs on a fresh Debian machine.
SHELL := /bin/bash
VENV ?= $(or $(SESPCL_VENV),.venv)
STATE ?= $(or $(SESPCL_STATE_DIR),.stack)
DEMO_CALLS ?= 30

.PHONY: help up down status demo test unit lint check-prometheus k8s-validate compose-test deps asterisk-root bench-intake \
	bench-dispatch bench-amd bench-webhooks bench-render bench-campaign-control bench-dashboards bench-farm

help:
	@echo "make demo   bring the stack up and place $(DEMO_CALLS) demo calls (live progress, summary)"
	@echo "make test   run the whole test suite against the real stack"
	@echo "make compose-test   docker-compose.yml built and run with podman: calls, scaling (docs/compose.md)"
	@echo "make up / make down / make status"
	@echo "make check-prometheus   check deploy/prometheus (config, alert rules, their tests) with promtool"

deps:
	bash scripts/install-deps.sh

asterisk-root:
	bash scripts/asterisk-root.sh

up:
	bash scripts/stack.sh up

down:
	bash scripts/stack.sh down

status:
	bash scripts/stack.sh status

demo: up
	set -a && . $(STATE)/env && set +a && $(VENV)/bin/sespcl demo --count $(DEMO_CALLS)
	@echo "The stack is still running: 'make down' stops it."

lint: deps
	$(VENV)/bin/ruff check orchestrator workers tests bench
	$(VENV)/bin/mypy

unit: deps
	$(VENV)/bin/pytest -q tests/unit

# promtool insists that the API key's file exists (it lives only in the Prometheus container):
# the config is checked as a copy beside alerts.yml, the path pointed at an empty file.
PROMETHEUS_DIR := deploy/prometheus
PROMETHEUS_KEY_FILE := /etc/prometheus/secrets/sespcl-api-key
check-prometheus:
	command -v promtool >/dev/null || bash scripts/install-deps.sh
	tmp="$$(mktemp -d)" && trap 'rm -rf -- "$$tmp"' EXIT && \
		cp $(PROMETHEUS_DIR)/alerts.yml "$$tmp/" && touch "$$tmp/api-key" && \
		sed 's|$(PROMETHEUS_KEY_FILE)|'"$$tmp"'/api-key|' $(PROMETHEUS_DIR)/prometheus.yml >"$$tmp/prometheus.yml" && \
		promtool check config "$$tmp/prometheus.yml"
	promtool check rules $(PROMETHEUS_DIR)/alerts.yml
	promtool test rules $(PROMETHEUS_DIR)/tests/*.yml

# The Kubernetes base (deploy/k8s), rendered and validated strictly, offline (docs/kubernetes.md).
k8s-validate: deps
	SESPCL_VENV=$(VENV) bash scripts/k8s-validate.sh

test:
	bash scripts/test.sh

# docker-compose.yml brought up for real with podman: images, calls, scaling, down (docs/compose.md).
compose-test: deps
	bash scripts/compose-test.sh

# Benchmarks run against the stack that `make up` leaves running (they start it if needed).
BENCH_ROWS ?= 1000000
BENCH_TWO_WAY_RATES ?= 40,80
BENCH_PERSONAL_CALLS ?= 3000
BENCH_PERSONAL_CPS ?= 80
bench-intake: up
	set -a && . $(STATE)/env && set +a && $(VENV)/bin/python bench/intake.py --rows $(BENCH_ROWS)

BENCH_RATES ?= 50,100,150,200,300,400
BENCH_HOLD ?= 500,1000,1500,2000
# Asterisk n1 on the upper half of the cores, alone, as a farm node is deployed (empty: shared).
BENCH_ASTERISK_CPUS ?= $(shell n=$$(nproc); [ $$n -ge 2 ] && seq -s, $$((n / 2)) $$((n - 1)))
bench-dispatch: up
	set -a && . $(STATE)/env && set +a && $(VENV)/bin/python bench/dispatch.py --rates $(BENCH_RATES) \
		--seconds 8 --hold "$(BENCH_HOLD)" --asterisk-cpus "$(BENCH_ASTERISK_CPUS)"
	set -a && . $(STATE)/env && set +a && $(VENV)/bin/python -m bench.dispatch_two_way \
		--rates $(BENCH_TWO_WAY_RATES)
	set -a && . $(STATE)/env && set +a && $(VENV)/bin/python -m bench.dispatch_personal \
		--calls $(BENCH_PERSONAL_CALLS) --cps $(BENCH_PERSONAL_CPS)
	$(VENV)/bin/python -m bench.render --line

# AMD verdicts on node n1 against SIPp far ends that speak (python -m bench.amd --help).
BENCH_AMD_ARGS ?= --humans 30 --machines 30 --concurrency 20
bench-amd: up
	set -a && . $(STATE)/env && set +a && $(VENV)/bin/python -m bench.amd $(BENCH_AMD_ARGS)

# The webhook sender against a local receiver, next to a bare aiohttp client loop, in a database
# of its own (only PostgreSQL is needed: the stack's database and sender are left alone).
BENCH_WEBHOOK_EVENTS ?= 20000
BENCH_WEBHOOK_RATE ?= 1000
bench-webhooks: deps
	set -a && { [ ! -f $(STATE)/env ] || . $(STATE)/env; } && set +a && $(VENV)/bin/python bench/webhooks.py \
		--events $(BENCH_WEBHOOK_EVENTS) --rate $(BENCH_WEBHOOK_RATE) --seconds 20

# Speech renders per second in one worker process against espeak-ng alone (no stack needed;
# BENCH_RENDER_ARGS=--database-url=... adds the batch job against a database of its own).
BENCH_RENDER_PROMPTS ?= 600
BENCH_RENDER_ARGS ?=
bench-render: deps
	$(VENV)/bin/python -m bench.render --prompts $(BENCH_RENDER_PROMPTS) $(BENCH_RENDER_ARGS)

# Pause, resume and cancel answers of a million-call campaign, and the background cancel's rows/s,
# next to a bare one-row UPDATE of the campaign, in a database of its own (only PostgreSQL is
# needed). BENCH_CAMPAIGN_ARGS='--database-url $$DATABASE_URL' runs it in the stack's database
# instead, which adds the API's answers (python -m bench.campaign_control --help).
BENCH_CAMPAIGN_ROWS ?= 1000000
BENCH_CAMPAIGN_ARGS ?= --old-cancel
bench-campaign-control: deps
	set -a && { [ ! -f $(STATE)/env ] || . $(STATE)/env; } && set +a && $(VENV)/bin/python -m bench.campaign_control \
		--rows $(BENCH_CAMPAIGN_ROWS) $(BENCH_CAMPAIGN_ARGS)

# Every SQL panel of the Grafana dashboards (deploy/grafana/) over 10 million call_events, against a
# bare count in the same run, in a database of its own (only PostgreSQL is needed, and the role
# sespcl_grafana that roles.sql makes). BENCH_DASHBOARD_ARGS=--keep reuses the history filled before.
BENCH_DASHBOARD_EVENTS ?= 10000000
BENCH_DASHBOARD_ARGS ?=
bench-dashboards: deps
	set -a && { [ ! -f $(STATE)/env ] || . $(STATE)/env; } && set +a && nice $(VENV)/bin/python -m bench.dashboards \
		--events $(BENCH_DASHBOARD_EVENTS) $(BENCH_DASHBOARD_ARGS)

# The orchestrator's own ceiling on a simulated farm (bench/fake_asterisk): K nodes on 127.0.70.x,
# its own API (port 5070), workers, upkeep and 1 then 2 dispatchers, started by the bench itself
# in a database and a Redis database of its own (not the stack: only PostgreSQL and Redis are
# needed). BENCH_FARM_ARGS=--million: one campaign of a million calls (python -m bench.farm --help).
BENCH_FARM_DATABASE_URL ?= postgresql://postgres@localhost:5432/sespcl_farm
BENCH_FARM_REDIS_URL ?= redis://127.0.0.1:6379/7
BENCH_FARM_ARGS ?=
bench-farm: deps
	$(VENV)/bin/python -m bench.farm --database-url $(BENCH_FARM_DATABASE_URL) \
		--redis-url $(BENCH_FARM_REDIS_URL) $(BENCH_FARM_ARGS)

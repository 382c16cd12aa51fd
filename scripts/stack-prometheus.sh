# Sourced by scripts/stack.sh: .stack/prometheus.yml, a Prometheus configuration that scrapes
# every process and node of this stack, and the metrics-only API key it scrapes the API with.
#   prometheus --config.file=.stack/prometheus.yml --storage.tsdb.path=/tmp/sespcl-tsdb
# (docs/operations.md). Scrapes every 5 s (SESPCL_PROMETHEUS_SCRAPE_S): a stack is for trying
# things out, where a call's figures should show within seconds.

# The API's /metrics needs a key with metrics:read: one of its own, made once, made again when
# the database no longer knows it (a fresh database).
ensure_prometheus_key() {
    local file="$STATE/prometheus/api-key" key=""
    [[ -s $file ]] && key="$(cat "$file")"
    if [[ -n $key ]] && curl -fsS -m 5 -o /dev/null -H "Authorization: Bearer $key" "$SESPCL_API_URL/metrics"; then
        return 0
    fi
    key="$("$VENV/bin/sespcl" keys add "prometheus-$(date +%Y%m%d%H%M%S)" --scopes metrics:read)" \
        || die "could not make the API key Prometheus scrapes with"
    (umask 077; printf '%s' "$key" >"$file")
}

write_prometheus_conf() {
    local conf="$STATE/prometheus.yml" interval="${SESPCL_PROMETHEUS_SCRAPE_S:-5}" n api_target
    [[ $interval =~ ^[1-9][0-9]{0,2}$ ]] || die "SESPCL_PROMETHEUS_SCRAPE_S must be whole seconds, 1-999"
    mkdir -p "$STATE/prometheus"
    ensure_prometheus_key
    api_target="${SESPCL_API_URL#*://}"; api_target="${api_target%%/*}"
    {
        echo "# Written by scripts/stack.sh at every \`up\`: edit scripts/stack-prometheus.sh, not this file."
        echo "global:"
        echo "  scrape_interval: ${interval}s"
        echo "  evaluation_interval: ${interval}s"
        echo "  external_labels: {stack: '$(hostname)'}"
        echo "rule_files: ['$REPO/deploy/prometheus/alerts.yml']"
        echo "scrape_configs:"
        echo "  - job_name: sespcl-api"
        echo "    authorization: {type: Bearer, credentials_file: '$STATE/prometheus/api-key'}"
        echo "    static_configs: [{targets: ['$api_target']}]"
        echo "  - job_name: sespcl-dispatcher"
        echo "    static_configs: [{targets: ['$METRICS_HOST:$METRICS_PORT_DISPATCHER']}]"
        echo "  - job_name: sespcl-worker"
        echo "    static_configs:"
        for ((n = 1; n <= WORKER_COUNT; n++)); do
            echo "      - {targets: ['$METRICS_HOST:$((METRICS_PORT_WORKERS + n))'], labels: {worker: 'worker-$n'}}"
        done
        echo "  - job_name: sespcl-webhooks"
        echo "    static_configs: [{targets: ['$METRICS_HOST:$METRICS_PORT_WEBHOOKS']}]"
        echo "  - job_name: sespcl-upkeep"
        echo "    static_configs: [{targets: ['$METRICS_HOST:$METRICS_PORT_UPKEEP']}]"
        echo "  - job_name: asterisk"
        echo "    static_configs:"
        for ((n = 1; n <= NODE_COUNT; n++)); do
            echo "      - {targets: ['$(node_address "$n"):8088'], labels: {node: 'n$n'}}"
        done
        # One series per live channel would be thousands of short-lived series: counts only.
        echo "    metric_relabel_configs:"
        echo "      - {source_labels: [__name__], regex: 'asterisk_channels_(state|duration_seconds|.*_info)', action: drop}"
    } >"$conf.tmp"
    mv -f "$conf.tmp" "$conf"
}

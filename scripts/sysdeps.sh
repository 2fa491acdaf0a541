#!/bin/sh
# Install the Debian packages the test suite runs for real, only when they are missing:
# rsyslog (the syslog receiver of tests/test_siem_syslog.py) and its OpenSSL stream driver
# (the RFC 5425 TLS listener). Needs root, as on CI and the project's machines.
set -eu
missing=""
command -v rsyslogd >/dev/null 2>&1 || [ -x /usr/sbin/rsyslogd ] || missing="rsyslog"
ls /usr/lib/*/rsyslog/lmnsd_ossl.so >/dev/null 2>&1 || missing="$missing rsyslog-openssl"
if [ -n "$missing" ]; then
	echo "sysdeps: installing$missing"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

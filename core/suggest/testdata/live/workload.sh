#!/bin/sh
# The workload behind core/events/testdata/recorded/bookworm-audit.jsonl (run by TestRecordLive in
# core/suggest/live_test.go): file reads and writes, execs, a connect, a bind and a syscall() call.
# Sequential on purpose (no pipelines), so the same root always gives the same events.
cat /etc/debian_version >/dev/null
head -n 1 /etc/os-release >/dev/null
ls /usr/share/doc >/dev/null
mkdir -p /tmp/work/cache
cp /etc/debian_version /tmp/work/cache/version
echo hello >/tmp/work/greeting
mv /tmp/work/greeting /tmp/work/greeting.txt
rm /tmp/work/cache/version
chmod 600 /tmp/work/greeting.txt
ln -sf /tmp/work/greeting.txt /tmp/work/link
cat /etc/shadow >/dev/null 2>&1
find /etc/apt -name '*.list' -exec cat {} \; >/dev/null
bash -c 'exec 3<>/dev/tcp/127.0.0.1/9' 2>/dev/null
perl -e 'syscall(318, my $b = "\0" x 8, 8, 0) >= 0 or die "getrandom: $!"'
perl -MSocket -e 'socket(my $s, PF_INET, SOCK_STREAM, 0) or die; bind($s, sockaddr_in(0, INADDR_LOOPBACK)) or die "bind: $!"'
echo done

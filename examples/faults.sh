#!/bin/sh
# Fault injection and fake time without a script: `mrhooker trace --inject` / `--fake-time` (README: Faults).
# Each recipe is run by a test (tests/test_testing.py); run one by name: sh examples/faults.sh enospc
set -u
case "${1:-all}" in
enospc|all)   # a full disk: cp reports it and exits 1 (coreutils cp writes with copy_file_range, not write)
    printf 'data\n' > /tmp/mrhooker-recipe-src
    mrhooker trace -q --inject 'copy_file_range,write:error=ENOSPC' cp /tmp/mrhooker-recipe-src /tmp/mrhooker-recipe-dst
    echo "cp exit status: $?" ;;
esac
case "${1:-all}" in
oom|all)      # malloc fails from the 100th call on: sqlite3 says "out of memory" (and does not crash)
    mrhooker trace -q --inject 'malloc,realloc:error=ENOMEM:when=100+' sqlite3 :memory: 'select 1;'
    echo "sqlite3 exit status: $?" ;;
esac
case "${1:-all}" in
refused|all)  # a refused connection: curl's error 7
    mrhooker trace -q --inject 'connect:error=ECONNREFUSED' curl -sS http://127.0.0.1:9/
    echo "curl exit status: $?" ;;
esac
case "${1:-all}" in
slow|all)     # a slow disk: every read waits 10 ms first (-T shows the time each took)
    mrhooker trace -T -e read --inject 'read:delay_enter=10ms' head -c 100 /etc/services > /dev/null ;;
esac
case "${1:-all}" in
y2k|all)      # another date: the realtime clocks start at 2000-01-01 00:00 and tick on (monotonic ones don't move)
    mrhooker trace -q --fake-time '2000-01-01 00:00:00' date ;;
esac

#!/bin/bash
# The fixed scenario of the truth matrix, run as the entrypoint of an unpacked instrumented image whose
# programs are the distribution's own (bash, sh, cat, id). Each step prints one line:
#   @@ STEP rc=EXIT out=OUTPUT (newlines folded)
# MATRIX_Q is empty natively; for a foreign architecture it is the qemu-user binary that starts each program
# (binfmt_misc is not registered on the machines that run the tests, so every exec goes through it).
Q=${MATRIX_Q:-}
# report STEP RC OUTPUT — bash only: under qemu no other program may run without $Q
report() {
	local out=${3//$'\n'/ }
	printf '@@ %s rc=%s out=%s\n' "$1" "$2" "${out:0:600}"
}
echo "@@ begin pid=$$"
# loaded: is the probe mapped into a process of the image?
out=$($Q /bin/cat /proc/self/maps 2>/dev/null) # stderr may name the probe (ld.so: "cannot be preloaded")
rc=$?
# (qemu-user does not show a guest's maps here: "unknown" then, and the test falls back to the events)
case "$out" in
*"/usr/lib/crs-ci/probe.so"*) p=yes ;;
*" r-xp "* | *" r--p "*) p=no ;;
*) p=unknown ;;
esac
report maps "$rc" "probe=$p"
out=$($Q /bin/cat /srv/secret/key 2>&1)
report read-denied $? "$out"
out=$($Q /bin/sh -c 'id' 2>&1)
report exec-denied $? "$out"
out=$($Q /bin/bash -c 'exec 3<>/dev/tcp/127.0.0.1/25' 2>&1)
report connect-denied $? "$out"
out=$($Q /bin/cat /srv/public/watched 2>&1)
report alert-read $? "$out"
# four levels of processes; the deepest reads the secret
out=$($Q /bin/bash -c "$Q /bin/bash -c \"$Q /bin/bash -c '$Q /bin/cat /srv/secret/key'\"" 2>&1)
report tree $? "$out"
echo "@@ end"

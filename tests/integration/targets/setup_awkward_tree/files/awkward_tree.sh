#!/bin/sh
# An awkward tree: spaces, unicode, a newline in a name, hard and dangling links, setgid,
# sticky, numeric owners, a sparse file, a fifo, an empty directory and old mtimes.
set -e
cd /v
mkdir -p "sp ace/empty"
echo hi > "sp ace/f"
chown 1234:5678 "sp ace/f"
chmod 2750 "sp ace/f"
ln "sp ace/f" hl
ln -s nowhere dangling
touch -h -d @1000000000 dangling
ln -s "sp ace" dirlink
touch -d "2001-01-01 00:00:00" "sp ace/f"
mkdir sg
chmod 2775 sg
chown 77:88 sg
printf x > "$(printf 'new\nline')"
echo ü > "ünï"
dd if=/dev/zero of=sparse bs=1 count=1 seek=10000000 2>/dev/null
mkfifo pipe
chmod 3775 sg
chown 5:6 /v
chmod 0750 /v

#!/usr/bin/env bash
# Builds the mailtrail .deb with CPack and inspects it (issue 8): metadata (dpkg-deb -I/-f),
# contents (dpkg-deb -c, and the extracted files against the source tree), Depends covering every
# shared library the binary needs, conffiles for /etc/mailtrail/*, maintainer scripts, and
# lintian without errors (its warnings are printed, not fatal).
#
#   check_deb.sh SOURCE_DIR BUILD_DIR PROJECT_VERSION
#
# The package must come from a build configured with CMAKE_INSTALL_PREFIX=/usr, because the
# binary has the migrations path compiled in. When BUILD_DIR is such a build, cpack packages it
# as is (about a second; it must have been built). Otherwise a fresh /usr build of the package
# alone (the mailtrail target) is made in a temporary directory (minutes on a busy machine).
set -euo pipefail

if [ $# -ne 3 ]; then
  echo "usage: $0 SOURCE_DIR BUILD_DIR PROJECT_VERSION" >&2
  exit 2
fi
src=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)
version=$3

for tool in cpack dpkg-deb dpkg-shlibdeps lintian readelf; do
  command -v "$tool" >/dev/null || {
    echo "FAIL: $tool not found (scripts/install-deps.sh installs dpkg-dev, lintian, binutils)" >&2
    exit 1
  }
done

workdir=$(mktemp -d "${TMPDIR:-/tmp}/mailtrail-deb.XXXXXX")
trap 'rm -rf "$workdir"' 0
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt")
if [ "$prefix" = "/usr" ] && [ -x "$build/mailtrail" ]; then
  echo "packaging $build (prefix /usr) with cpack"
  cpack --config "$build/CPackConfig.cmake" -B "$workdir/out" >"$workdir/cpack.log" 2>&1 || {
    cat "$workdir/cpack.log" >&2; echo "FAIL: cpack" >&2; exit 1; }
else
  echo "$build has prefix '${prefix}', not /usr: building the package in a fresh /usr build"
  cmake -S "$src" -B "$workdir/build" -G Ninja -DCMAKE_INSTALL_PREFIX=/usr \
    -DMAILTRAIL_BUILD_TESTS=OFF >"$workdir/cpack.log" 2>&1 &&
  # Only what the package holds, not the `all` that the `package` target would build.
  cmake --build "$workdir/build" --target mailtrail postgrid-sim mailtrail_deb_changelog -j 2 \
    >>"$workdir/cpack.log" 2>&1 &&
  cpack --config "$workdir/build/CPackConfig.cmake" -B "$workdir/out" >>"$workdir/cpack.log" 2>&1 || {
    tail -50 "$workdir/cpack.log" >&2; echo "FAIL: package build" >&2; exit 1; }
fi

arch=$(dpkg --print-architecture)
deb="$workdir/out/mailtrail_${version}_${arch}.deb"
[ -f "$deb" ] || { ls -l "$workdir/out" >&2; echo "FAIL: no $deb" >&2; exit 1; }
echo "package: $(basename "$deb") ($(stat -c %s "$deb") bytes)"

# --- metadata ---------------------------------------------------------------------------------
dpkg-deb -I "$deb" >"$workdir/info" || fail "dpkg-deb -I"
field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = "mailtrail" ] || fail "Package: $(field Package)"
[ "$(field Version)" = "$version" ] || fail "Version: $(field Version), expected $version"
[ "$(field Architecture)" = "$arch" ] || fail "Architecture: $(field Architecture)"
[ "$(field Section)" = "mail" ] || fail "Section: $(field Section)"
# (Here-strings, not pipes into grep -q: with pipefail, an early-exiting grep can SIGPIPE the writer.)
grep -qE '^[^<>]+ <[^<>@ ]+@[^<>@ ]+>$' <<<"$(field Maintainer)" || fail "Maintainer: $(field Maintainer)"
synopsis=$(field Description | sed -n 1p)
grep -q 'PostGrid' <<<"$synopsis" || fail "Description synopsis: $synopsis"
depends=$(field Depends)
echo "Depends: $depends"
# Depends as a list of package names (alternatives and versions dropped).
depends_names=$(echo "$depends" | tr ',|' '\n\n' | sed 's/(.*)//; s/:any//; s/ //g' | sed '/^$/d' | sort -u)
grep -qx adduser <<<"$depends_names" || fail "Depends lacks adduser (postinst runs it)"

for member in control md5sums conffiles postinst prerm postrm; do
  grep -qE "^ +[0-9]+ bytes, +[0-9]+ lines +\*? *${member}( |$)" "$workdir/info" ||
    fail "control archive lacks $member"
done

# --- contents ---------------------------------------------------------------------------------
dpkg-deb -c "$deb" >"$workdir/contents"
paths=$(awk '{print $NF}' "$workdir/contents" | sed 's#^\./#/#; s#/$##')
has() { grep -qxF "$1" <<<"$paths"; }
for path in /usr/bin/mailtrail /usr/bin/postgrid-sim /lib/systemd/system/mailtrail.service /etc/mailtrail/mailtrail.yaml \
    /usr/share/mailtrail/mailtrail.env.example /usr/share/doc/mailtrail/copyright \
    /usr/share/doc/mailtrail/changelog.gz; do
  has "$path" || fail "package lacks $path"
done
for sql in "$src"/migrations/*.sql; do
  has "/usr/share/mailtrail/migrations/$(basename "$sql")" || fail "package lacks migration $(basename "$sql")"
done
[ "$(awk '$NF == "./usr/bin/mailtrail" {print $1, $2}' "$workdir/contents")" = "-rwxr-xr-x root/root" ] ||
  fail "/usr/bin/mailtrail is not -rwxr-xr-x root/root"
forbidden=$(grep -E '^/usr/local|^/etc/mailtrail/mailtrail\.env$' <<<"$paths" || true)
[ -z "$forbidden" ] || fail "package ships what it must not: $(tr '\n' ' ' <<<"$forbidden")"

# conffiles: exactly the regular files under /etc.
dpkg-deb -e "$deb" "$workdir/control"
for member in conffiles postinst prerm postrm; do
  cp "$workdir/control/$member" "$workdir/$member" 2>/dev/null || : >"$workdir/$member"
done
etc_files=$(grep -E '^-' "$workdir/contents" | awk '{print $NF}' | sed 's#^\./#/#' | grep '^/etc/' | sort)
[ "$(sort "$workdir/conffiles")" = "$etc_files" ] ||
  fail "conffiles ($(tr '\n' ' ' <"$workdir/conffiles")) != files in /etc ($(echo $etc_files))"
for script in postinst prerm postrm; do
  sh -n "$workdir/$script" || fail "$script: syntax error"
done
grep -q 'adduser --system' "$workdir/postinst" || fail "postinst does not create the system user"
grep -q 'chmod 0600' "$workdir/postinst" || fail "postinst does not fix mailtrail.env's mode"

# Extracted files are the source files (the unit verbatim for the /usr prefix).
mkdir "$workdir/root"
dpkg-deb -x "$deb" "$workdir/root"
cmp -s "$workdir/root/lib/systemd/system/mailtrail.service" "$src/systemd/mailtrail.service" ||
  fail "packaged unit differs from systemd/mailtrail.service"
cmp -s "$workdir/root/etc/mailtrail/mailtrail.yaml" "$src/config/mailtrail.yaml" ||
  fail "packaged mailtrail.yaml differs from config/mailtrail.yaml"
for sql in "$src"/migrations/*.sql; do
  cmp -s "$workdir/root/usr/share/mailtrail/migrations/$(basename "$sql")" "$sql" ||
    fail "packaged $(basename "$sql") differs from the source"
done
# The daemon finds its migrations by the path compiled into it: it must be where they are.
grep -aqF /usr/share/mailtrail/migrations "$workdir/root/usr/bin/mailtrail" ||
  fail "/usr/bin/mailtrail does not have /usr/share/mailtrail/migrations compiled in"
if grep -aqF /usr/local/share/mailtrail "$workdir/root/usr/bin/mailtrail"; then
  fail "/usr/bin/mailtrail has a /usr/local migrations path compiled in"
fi
"$workdir/root/usr/bin/mailtrail" --help >/dev/null 2>&1 || fail "packaged mailtrail --help fails"

# Depends covers every shared library the binary links (the package owning each NEEDED soname,
# or a virtual package it provides).
binary="$workdir/root/usr/bin/mailtrail"
while read -r soname; do
  # awk reads all of ldconfig's output (no early exit): under pipefail an early exit can SIGPIPE
  # ldconfig and fail the whole check now and then.
  lib=$(ldconfig -p | awk -v s="$soname" '$1 == s && /x86-64|AArch64|64bit/ && !n++ {print $NF}')
  [ -n "$lib" ] || lib=$(ldconfig -p | awk -v s="$soname" '$1 == s && !n++ {print $NF}')
  [ -n "$lib" ] || { fail "NEEDED $soname not found by ldconfig"; continue; }
  owner=$(dpkg -S "$(readlink -f "$lib")" 2>/dev/null | head -1 | cut -d: -f1) ||
    owner=$(dpkg -S "$lib" 2>/dev/null | head -1 | cut -d: -f1) || true
  [ -n "$owner" ] || { fail "no Debian package owns $lib"; continue; }
  # The owner's shlibs file may name a virtual package it Provides (libspdlog1.10-fmt9).
  provides=$(dpkg-query -W -f='${Provides}' "$owner" 2>/dev/null | tr ',' '\n' | sed 's/(.*)//; s/ //g')
  satisfied=0
  for name in "$owner" $provides; do
    if grep -qxF "$name" <<<"$depends_names"; then satisfied=1; fi
  done
  [ "$satisfied" -eq 1 ] || fail "Depends lacks $owner (for $soname)"
done < <(readelf -d "$binary" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')

# --- lintian ----------------------------------------------------------------------------------
lintian --tag-display-limit 0 -I "$deb" >"$workdir/lintian.out" 2>"$workdir/lintian.err" || true
grep -v 'running with root privileges' "$workdir/lintian.err" >&2 || true
echo "lintian:"
sed 's/^/  /' "$workdir/lintian.out"
if grep -q '^E: ' "$workdir/lintian.out"; then fail "lintian reports errors"; fi
grep -qE '^(E|W|I|N|P|O): |^$' "$workdir/lintian.out" || [ ! -s "$workdir/lintian.out" ] ||
  fail "unexpected lintian output"

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "PASS: $(basename "$deb") metadata, contents, Depends and lintian"

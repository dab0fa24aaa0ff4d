#!/bin/sh
# make-bundle.sh: makes the self-contained builder bundle that the plugin adds
# to the Nix store, so that builds run in the sandbox (README: "How the builder
# reaches the sandbox").  Run by meson (plugin/meson.build); by hand:
#
#   scripts/make-bundle.sh BUILDER MTOOLS OUTDIR [STAMP]
#
# OUTDIR gets, and nothing else:
#   bin/nix-repart-image-builder    the builder, as built
#   bin/mtools, bin/mformat -> mtools   (the builder runs mformat only; it
#                                       writes the directories and files itself)
#   lib/<each shared library ldd reports for them>, lib/ld-linux-*.so.*
#   lib/ld.so -> that loader
#   lib/locale/C.utf8/              the locale mtools and the builder use
#   lib/gconv/gconv-modules, IBM437.so   code page 437 for mtools' short names
# Programs run as `lib/ld.so --library-path lib bin/PROGRAM`: nothing is
# patched, and nothing outside OUTDIR is needed at run time.  The content
# depends only on these files (names sorted, no time stamps: the store
# normalises those), so its store path changes only when one of them does.
set -eu

builder=$1 mtools=$2 out=$3 stamp=${4:-}
# As meson's install script: under DESTDIR when there is one.
if [ -n "${MESON_INSTALL_PREFIX:-}" ] && [ -n "${DESTDIR:-}" ]; then
	out=$DESTDIR$out
fi
gconv_dir=${NRI_GCONV_DIR:-}
locale_dir=${NRI_LOCALE_DIR:-/usr/lib/locale/C.utf8}

die() { echo "make-bundle.sh: $*" >&2; exit 1; }
[ -x "$builder" ] || die "$builder is not an executable"
[ -x "$mtools" ] || die "$mtools is not an executable"

tmp=$out.tmp
rm -rf "$tmp"
mkdir -p "$(dirname "$out")" "$tmp/bin" "$tmp/lib/locale" "$tmp/lib/gconv"

cp "$builder" "$tmp/bin/nix-repart-image-builder"
# mformat is mtools, which looks at its argv[0].
cp -L "$mtools" "$tmp/bin/mtools"
ln -s mtools "$tmp/bin/mformat"

# Every library either program loads, found as the build found them; the
# loader under its own name.
loader=
for prog in "$builder" "$mtools"; do
	ldd "$prog" >"$tmp/ldd" || die "ldd $prog failed"
	while read -r a b c _; do
		case "$a $b $c" in
		linux-vdso* | linux-gate*) ;;
		*" => /"*)
			cp -L "$c" "$tmp/lib/$a" ;;
		*" => not"*)
			die "$prog: $a not found" ;;
		/*)
			loader=${a##*/}
			cp -L "$a" "$tmp/lib/$loader" ;;
		esac
	done <"$tmp/ldd"
done
rm -f "$tmp/ldd"
[ -n "$loader" ] || die "ldd named no loader for $builder"
# The plugin and the builder name the loader lib/ld.so, whatever its name.
ln -s "$loader" "$tmp/lib/ld.so"

# The C.UTF-8 locale (glibc does not build it in) and code page 437 (mtools
# converts short names through iconv): found through LOCPATH and GCONV_PATH,
# which the builder sets.
[ -d "$locale_dir" ] || die "$locale_dir (the C.UTF-8 locale) is missing"
cp -R "$locale_dir" "$tmp/lib/locale/C.utf8"
if [ -z "$gconv_dir" ]; then
	libc=$(ldd "$mtools" | awk '$1 ~ /^libc\.so/ { print $3 }')
	gconv_dir=$(dirname "$(readlink -f "$libc")")/gconv
	[ -d "$gconv_dir" ] || gconv_dir=/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)/gconv
fi
[ -f "$gconv_dir/IBM437.so" ] || die "$gconv_dir/IBM437.so is missing"
cp "$gconv_dir/IBM437.so" "$tmp/lib/gconv/"
cat "$gconv_dir"/gconv-modules "$gconv_dir"/gconv-modules.d/*.conf 2>/dev/null |
	awk '($1 == "alias" && $3 == "IBM437//") || ($1 == "module" && $4 == "IBM437")' \
	>"$tmp/lib/gconv/gconv-modules"
grep -q '^module' "$tmp/lib/gconv/gconv-modules" || die "no IBM437 module in $gconv_dir's gconv-modules"

chmod -R u+w,go-w "$tmp"
rm -rf "$out"
mv "$tmp" "$out"
[ -z "$stamp" ] || : >"$stamp"

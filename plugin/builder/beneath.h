/* beneath.h: opening a directory by a path that must not leave a given
 * directory.
 *
 * A source the image copies, such as "${pkgs.foo}/share/doc", is a path
 * inside a store path.  Resolved by the kernel as it stands, a symlink on
 * the way (share -> /, or -> ../../other-store-path) would take the copy
 * out of the store path the derivation depends on, and put a file of the
 * machine that builds into the image.  So the path is resolved beneath the
 * store path, as openat2()'s RESOLVE_BENEATH resolves it:
 *
 *   - a symlink on the way whose target is relative, and which with the
 *     rest of the path stays inside the directory (lib64 -> lib,
 *     docs -> share/doc), is followed, as any path inside the store path
 *     means what the store path's own files make it mean;
 *   - a symlink whose target is absolute (even one naming a place inside
 *     the directory), or whose ".." climbs above it, is not: -EXDEV;
 *   - more than 40 symlinks on the way: -ELOOP, as the kernel.
 *
 * The kernel's openat2() does it where it is there; where it is not (Linux
 * before 5.6, or a seccomp filter that refuses it), the same rules are
 * followed one component at a time with O_NOFOLLOW, never asking the
 * kernel to resolve more than one name. */
#pragma once

#include <stdbool.h>

/* Opens the directory `path` (relative, "" for `dirfd` itself) beneath
 * `dirfd` as an O_PATH descriptor.  `use_openat2` false takes the
 * component-wise way whatever the kernel has (for tests).  Returns the
 * descriptor, or a negative errno: -EXDEV (the path leaves `dirfd`),
 * -ELOOP, -ENOTDIR, -ENOENT, … */
int nri_open_dir_beneath(int dirfd, const char *path, bool use_openat2);

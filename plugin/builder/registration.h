/* registration.h: a closure's registration, as `nix-store --load-db` reads
 * it and NixOS's stage 2 loads it from /nix-path-registration.
 *
 * For each store path, in byte order of the paths:
 *
 *   <path>
 *   <NAR hash: SHA-256 in base16, as nix-store --dump-db prints it>
 *   <NAR size>
 *   <deriver, or an empty line where Nix did not give it>
 *   <number of references>
 *   <reference>…
 *
 * from the entries Nix gives the builder for exportReferencesGraph
 * (path, narHash, narSize, references, deriver when known).  The text is
 * the same as `nix-store --dump-db` of the same paths on the building
 * machine, but for the derivers Nix leaves out of the graph (Nix 2.8's
 * exportReferencesGraph has none: an empty line, as NixOS's closureInfo
 * writes it). */
#pragma once

#include <cjson/cJSON.h>

/* Writes the registration of `graph` (an exportReferencesGraph array) to
 * the new file `path` (O_EXCL, mode 0644).  `what` names the partition in
 * messages.  0, or a negative errno after a message naming the entry. */
int nri_registration_write(const cJSON *graph, const char *path, const char *what);

// load.cc: what runs when Nix loads the plugin (dlopen of plugin-files).
//
// Nix's C++ API changes between releases, and a plugin built against one Nix
// that runs inside another calls functions with the wrong signatures and reads
// objects with the wrong layout: Nix crashes, or worse.  So before anything
// else, the plugin compares the Nix it was built for (NRI_NIX_VERSION, from
// pkg-config at build time) with the Nix that loaded it.  Only when they are
// the same does it register its settings and builtins.repartImage
// (nri_register(), primop.cc); otherwise it prints one line saying so and
// registers nothing, so the only Nix symbol it has touched is the version
// string.
//
// This file includes no Nix header: reading the running version must not
// depend on the API it checks.  And the plugin is linked against none of
// Nix's libraries (plugin/eval/meson.build), so loading it brings no code
// of the Nix it was built for into another Nix's process.

#include <dlfcn.h>

#include <cstdio>
#include <string>

void nri_register();

namespace {

// nix::nixVersion (libnixstore: `std::string nixVersion = PACKAGE_VERSION`,
// in every Nix from 2.0 to 2.35) by its mangled name.  A std::string of
// libstdc++'s C++11 ABI, which every Nix this plugin knows is built with.
const std::string *runningNixVersion() {
        return static_cast<const std::string *>(dlsym(RTLD_DEFAULT, "_ZN3nix10nixVersionB5cxx11E"));
}

const char *thisPlugin() {
        Dl_info info;
        if (dladdr(reinterpret_cast<void *>(&runningNixVersion), &info) && info.dli_fname)
                return info.dli_fname;
        return "libnix-repart-image.so";
}

struct Load {
        Load() {
                const std::string *running = runningNixVersion();
                if (running && *running == NRI_NIX_VERSION) {
                        nri_register();
                        return;
                }
                std::fprintf(
                    stderr,
                    "warning: nix-repart-image plugin %s was built for Nix %s but this is Nix %s: "
                    "builtins.repartImage is not available; rebuild the plugin against this Nix "
                    "(PKG_CONFIG_PATH=<its prefix>/lib/pkgconfig meson setup build -Dbuilder=false)\n",
                    thisPlugin(), NRI_NIX_VERSION, running ? running->c_str() : "of unknown version");
        }
};

// The only object of this file, and it is built last: meson links load.cc
// after primop.cc, so the Nix-facing code is initialised before it runs.
Load load;

} // namespace

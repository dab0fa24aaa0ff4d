// primop.cc: the C++ shim that registers builtins.repartImage with Nix.
//
// Nix's plugin interface is C++, so this file does what only C++ can: force
// and read Nix values into the C value tree (node.h), hand the tree to the C
// core, turn the core's errors into Nix evaluation errors at the attribute's
// position, and turn the core's JSON back into Nix values — with the string
// context of every store path the image uses, so the derivation depends on
// exactly what goes into the image.  Validation, normalisation and the
// derivation's attributes are decided in C (plugin/core/); so is what a
// string's context allows: this file only says which store paths a context
// stands for (Call::setContext) and coerces a set to a string (Call::coerce).
//
// Written once for every Nix the plugin supports: what differs between them
// goes through the adapters of nix-api.hh (namespace nri).  Nothing here is
// registered by a static object: load.cc calls nri_register() once it has
// checked that the running Nix is the one the plugin was built for.

#include "nix-api.hh"

#include <algorithm>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

extern "C" {
#include <nix-repart-image/file-systems.h>
#include <nix-repart-image/spec-json.h>
#include <nix-repart-image/spec.h>

#include "spec-args.h"
}

using namespace nix;
using nri::Position;

namespace {

struct RepartImageSettings : Config {
        Setting<std::string> builder{
            this, "", "repart-image-builder",
            "A program outside the Nix store that the derivations of "
            "builtins.repartImage run instead of the bundle's builder (for "
            "debugging; builds then need the sandbox off).  Empty (the default): "
            "the builder of repart-image-bundle.  The installed builder is " NRI_DEFAULT_BUILDER "."};
        Setting<std::string> bundle{this, NRI_DEFAULT_BUNDLE, "repart-image-bundle",
                                    "The self-contained builder bundle (builder, mtools, their shared "
                                    "libraries and loader) that builtins.repartImage adds to the Nix store "
                                    "and names as the derivations' builder, so that they build in the "
                                    "sandbox."};
};

// Made by nri_register().
RepartImageSettings *repartImageSettings;

// The words of a Nix error, for a message of ours: not msg(), which is the
// whole report ("error: …", positions, traces), so that a message quoting it
// would say "error:" twice.
std::string errorText(const BaseError &e) {
        return filterANSIEscapes(e.info().msg.str(), true);
}

// The bundle as the derivation names it: `root` is the directory holding bin/
// and lib/ (a store path, or a directory inside one), `storePath` the store
// path to depend on.
struct Bundle {
        std::string root, storePath;
};

std::string bundleAdvice(const std::string &dir) {
        return "add it to the store beforehand with `nix-store --add " + dir +
               "` (as a user the store accepts, with the same Nix store), or set repart-image-bundle to a "
               "copy of it that is already in the store";
}

// Brings the bundle directory `dir` into the store, content-addressed (as
// `nix-store --add DIR` does: NAR serialisation, SHA-256, named after the
// directory), once per process and directory.  A directory already in the
// store is named as it is.  In read-only mode (`nix-instantiate --eval`) the
// path is only computed, as Nix does for path literals.  Throws Error when
// the store refuses the import and does not hold the path already.
Bundle importBundle(EvalState &state, const std::string &setting) {
        static std::map<std::pair<std::string, std::string>, Bundle> cache;
        auto &store = *state.store;
        std::string dir = canonPath(setting);
        auto key = std::make_pair(nri::storeUri(store), dir);
        if (auto it = cache.find(key); it != cache.end())
                return it->second;

        Bundle b;
        if (store.isInStore(dir)) {
                b.root = dir;
                b.storePath = store.printStorePath(store.toStorePath(dir).first);
        } else {
                if (!pathExists(dir + "/lib/ld.so") || !pathExists(dir + "/bin/nix-repart-image-builder"))
                        throw Error(
                            "the builder bundle %s (nix.conf setting repart-image-bundle) is missing "
                            "or incomplete: it needs bin/nix-repart-image-builder and lib/ld.so "
                            "(meson makes it as build/plugin/nix-repart-image-bundle and installs it)",
                            dir);
                std::string name(baseNameOf(dir));
                std::optional<StorePath> path;
                if (settings.readOnlyMode)
                        path = nri::computeDirStorePath(state, name, dir);
                else {
                        try {
                                path = nri::addDirToStore(state, name, dir);
                        } catch (Error &e) {
                                auto computed = nri::computeDirStorePath(state, name, dir);
                                if (!store.isValidPath(computed))
                                        throw Error(
                                            "cannot add the builder bundle %s to the Nix store (%s): %s",
                                            dir, errorText(e), bundleAdvice(dir));
                                path = computed;
                        }
                }
                b.storePath = b.root = store.printStorePath(*path);
        }
        cache.emplace(key, b);
        return b;
}

// The outputs of the derivation `drvPath`, name → store path ("" for an
// output whose path is known only once built), read from its .drv; nullptr,
// with `why` set, when the .drv cannot be read (read-only evaluation writes
// none).  A .drv never changes, so what was read once is kept.
const std::map<std::string, std::string> *derivationOutputs(Store &store, const std::string &drvPath,
                                                            std::string &why) {
        static std::map<std::pair<std::string, std::string>, std::map<std::string, std::string>> cache;
        auto key = std::make_pair(nri::storeUri(store), drvPath);
        if (auto it = cache.find(key); it != cache.end())
                return &it->second;
        try {
                std::map<std::string, std::string> outputs;
                for (auto &[name, out] :
                     store.readDerivation(store.parseStorePath(drvPath)).outputsAndOptPaths(store))
                        outputs[name] = out.second ? store.printStorePath(*out.second) : "";
                return &cache.emplace(key, std::move(outputs)).first->second;
        } catch (Error &e) {
                why = errorText(e);
                return nullptr;
        }
}

struct ArenaDeleter {
        void operator()(nri_arena *a) const {
                nri_arena_free(a);
        }
};
struct JsonDeleter {
        void operator()(cJSON *j) const {
                cJSON_Delete(j);
        }
};
using JsonPtr = std::unique_ptr<cJSON, JsonDeleter>;

// One call of the primop: the tree it builds and the contexts it keeps.
class Call {
      public:
        Call(EvalState &state, Position pos) : state(state), callPos(pos), arena(nri_arena_new()) {
        }

        void run(Value &arg, Value &result);

      private:
        EvalState &state;
        Position callPos;
        std::unique_ptr<nri_arena, ArenaDeleter> arena;
        // The context of each string node the tree holds.
        std::map<const nri_node *, nri::Context> nodeContext;
        // The path value of each path node.
        std::map<const nri_node *, nri::SourcePath> nodePath;
        // Store path → the context of the strings the spec uses under it.
        std::map<std::string, nri::Context> usedContext;

        // The sets convert() left for coerce(), with their values.
        std::map<const nri_node *, Value *> coercible;
        // What a callback caught and run() throws again (defer()).
        std::exception_ptr pending;

        nri_node *convert(Value &v, Position pos, unsigned depth);
        void setString(nri_node *n, std::string_view s);
        void setContext(nri_node *n, const nri::Context &context);
        std::string storePathOf(std::string_view s) const;
        void toValue(const cJSON *j, Value &v);
        [[noreturn]] void fail(const nri_error &err);

        static int importPath(void *ctx, const nri_node *node, const char **ret, nri_error *err);
        static void useContext(void *ctx, const nri_node *node, const char *storePath);
        static int coerce(void *ctx, const nri_node *node, const nri_node **ret, nri_error *err);
        int defer(nri_error *err, const nri_node *node);
};

void Call::setString(nri_node *n, std::string_view s) {
        n->str.s = nri_strndup(arena.get(), s.data(), s.size());
        n->str.len = s.size();
}

// The store paths a string's context makes available to a build (node.h,
// nri_context): a store path, one output of a derivation
// (output), or a drvPath: the derivation and all its outputs (allOutputs).
void Call::setContext(nri_node *n, const nri::Context &context) {
        std::vector<std::string> paths;
        std::string unresolved;
        for (auto &c : nri::contextElems(*state.store, context)) {
                if (c.kind == nri::ContextElem::Kind::storePath) {
                        paths.push_back(c.path);
                        continue;
                }
                std::string drvPath = c.path, output, why = c.why;
                if (c.kind == nri::ContextElem::Kind::allOutputs)
                        paths.push_back(drvPath);
                else
                        output = c.output;
                auto *outputs = why.empty() ? derivationOutputs(*state.store, drvPath, why) : nullptr;
                for (auto &[name, path] : outputs ? *outputs : std::map<std::string, std::string>{}) {
                        if (!output.empty() && name != output)
                                continue;
                        if (path.empty())
                                why = "its path is known only once it is built";
                        else
                                paths.push_back(path);
                        if (!output.empty())
                                break;
                }
                if (outputs && !output.empty() && !outputs->count(output))
                        why = "the derivation has no such output";
                if (!why.empty() && unresolved.empty())
                        unresolved = (output.empty() ? "the outputs of " : "output " + output + " of ") +
                                     drvPath + " (" + why + ")";
        }
        auto *a = arena.get();
        auto **list = static_cast<const char **>(nri_alloc(a, sizeof(char *) * (paths.size() + 1)));
        for (size_t i = 0; i < paths.size(); i++)
                list[i] = nri_strndup(a, paths[i].data(), paths[i].size());
        list[paths.size()] = nullptr;
        n->has_context = !context.empty();
        n->context.paths = list;
        n->context.n_paths = paths.size();
        n->context.unresolved = unresolved.empty() ? nullptr : nri_strdup(a, unresolved.c_str());
        if (!context.empty())
                nodeContext[n] = context;
}

nri_node *Call::convert(Value &v, Position pos, unsigned depth) {
        auto *n = static_cast<nri_node *>(nri_alloc(arena.get(), sizeof(nri_node)));
        n->pos = nri::opaquePosition(arena.get(), pos);
        if (depth > NRI_NODE_MAX_DEPTH) {
                n->kind = NRI_DEEP;
                return n;
        }
        state.forceValue(v, nri::pos(pos));
        switch (v.type()) {
        case nNull:
                n->kind = NRI_NULL;
                break;
        case nBool:
                n->kind = NRI_BOOL;
                n->b = nri::boolOf(v);
                break;
        case nInt:
                n->kind = NRI_INT;
                n->i = nri::intOf(v);
                break;
        case nFloat:
                n->kind = NRI_FLOAT;
                n->f = nri::floatOf(v);
                break;
        case nString: {
                nri::Context context;
                n->kind = NRI_STRING;
                setString(n, nri::stringOf(v));
                nri::contextOf(v, context);
                setContext(n, context);
                break;
        }
        case nPath: {
                n->kind = NRI_PATH;
                auto path = nri::pathOf(v);
                setString(n, nri::showPath(path));
                nodePath.emplace(n, std::move(path));
                break;
        }
        case nAttrs: {
                /* What Nix would coerce to a string, whatever its `type`
                 * says: left for coerce(), where the core takes a string. */
                if (nri::attrsOf(v).get(nri::toStringSymbol(state)) ||
                    nri::attrsOf(v).get(nri::outPathSymbol(state))) {
                        n->kind = NRI_COERCIBLE;
                        coercible[n] = &v;
                        break;
                }
                std::vector<const Attr *> attrs;
                for (auto &a : nri::attrsOf(v))
                        attrs.push_back(&a);
                std::sort(attrs.begin(), attrs.end(), [this](const Attr *a, const Attr *b) {
                        return nri::nameOf(state, *a) < nri::nameOf(state, *b);
                });
                n->kind = NRI_ATTRS;
                n->attrs.n = attrs.size();
                n->attrs.items =
                    static_cast<nri_attr *>(nri_alloc(arena.get(), sizeof(nri_attr) * attrs.size()));
                for (size_t i = 0; i < attrs.size(); i++) {
                        std::string_view name = nri::nameOf(state, *attrs[i]);
                        n->attrs.items[i].name = nri_strndup(arena.get(), name.data(), name.size());
                        n->attrs.items[i].value =
                            convert(*attrs[i]->value, nri::attrPosition(*attrs[i], pos), depth + 1);
                }
                break;
        }
        case nList:
                n->kind = NRI_LIST;
                n->list.n = nri::listSize(v);
                n->list.items =
                    static_cast<nri_node **>(nri_alloc(arena.get(), sizeof(nri_node *) * n->list.n));
                for (size_t i = 0; i < n->list.n; i++)
                        n->list.items[i] = convert(*nri::listElem(v, i), pos, depth + 1);
                break;
        case nFunction:
                n->kind = NRI_FUNCTION;
                break;
        default:
                n->kind = NRI_DEEP;
                break;
        }
        return n;
}

// "/nix/store/<hash>-<name>/sub" → "/nix/store/<hash>-<name>"; "" when s is
// not in the store.
std::string Call::storePathOf(std::string_view s) const {
        const std::string &dir = state.store->storeDir;
        if (s.size() <= dir.size() + 1 || s.substr(0, dir.size()) != dir || s[dir.size()] != '/')
                return "";
        auto end = s.find('/', dir.size() + 1);
        return std::string(s.substr(0, end));
}

int Call::importPath(void *ctx, const nri_node *node, const char **ret, nri_error *err) {
        auto *self = static_cast<Call *>(ctx);
        try {
                nri::Context context;
                std::string storePath = nri::copyPathToStore(self->state, context, self->nodePath.at(node));
                self->usedContext[self->storePathOf(storePath)].insert(context.begin(), context.end());
                *ret = nri_strdup(self->arena.get(), storePath.c_str());
                return 0;
        } catch (Error &e) {
                return nri_fail(self->arena.get(), err, node, "cannot copy %s into the Nix store: %s",
                                node->str.s, errorText(e).c_str());
        } catch (...) {
                return self->defer(err, node);
        }
}

// An exception that is no evaluation error (an interrupt, no memory) must
// not unwind through the C core: it is kept, the core is told to stop, and
// run() throws it again.
int Call::defer(nri_error *err, const nri_node *node) {
        pending = std::current_exception();
        return nri_fail(arena.get(), err, node, "interrupted");
}

// "${set}": Nix's coerceToString() of a set (EvalState::tryAttrsToString),
// one step at a time so that a set whose outPath is itself, or nests
// without end, is an error rather than a stack overflow.
int Call::coerce(void *ctx, const nri_node *node, const nri_node **ret, nri_error *err) {
        auto *self = static_cast<Call *>(ctx);
        auto &state = self->state;
        Position pos = node->pos ? nri::fromOpaque(node->pos) : self->callPos;
        constexpr unsigned maxSteps = 64;
        try {
                Value *v = self->coercible.at(node);
                state.forceValue(*v, nri::pos(pos));
                for (unsigned step = 0; v->type() == nAttrs; step++) {
                        if (step == maxSteps)
                                return nri_fail(self->arena.get(), err, node,
                                                "outPath or __toString still gives a set after %u steps",
                                                maxSteps);
                        if (auto *toString = nri::attrsOf(*v).get(nri::toStringSymbol(state))) {
                                Value *r = state.allocValue();
                                state.callFunction(*toString->value, *v, *r, nri::pos(pos));
                                v = r;
                        } else if (auto *outPath = nri::attrsOf(*v).get(nri::outPathSymbol(state))) {
                                v = outPath->value;
                        } else {
                                return nri_fail(
                                    self->arena.get(), err, node,
                                    "cannot coerce the set to a string: a set that outPath or __toString "
                                    "gives has neither");
                        }
                        state.forceValue(*v, nri::pos(pos));
                }
                nri::Context context;
                auto s = nri::coerceToString(state, pos, *v, context);
                auto *n = static_cast<nri_node *>(nri_alloc(self->arena.get(), sizeof(nri_node)));
                n->kind = NRI_STRING;
                n->pos = node->pos;
                self->setString(n, s);
                self->setContext(n, context);
                *ret = n;
                return 0;
        } catch (Error &e) {
                return nri_fail(self->arena.get(), err, node, "cannot coerce the set to a string: %s",
                                errorText(e).c_str());
        } catch (...) {
                return self->defer(err, node);
        }
}

// Keyed by the store path the core says the string names, not by the
// string: a CopyFiles= value "/nix/store/…-x/sub:/target" names
// /nix/store/…-x, which the spec holds as "/nix/store/…-x/sub".
void Call::useContext(void *ctx, const nri_node *node, const char *storePath) {
        auto *self = static_cast<Call *>(ctx);
        auto it = self->nodeContext.find(node);
        if (it == self->nodeContext.end())
                return;
        self->usedContext[self->storePathOf(storePath)].insert(it->second.begin(), it->second.end());
}

void Call::toValue(const cJSON *j, Value &v) {
        if (cJSON_IsNull(j)) {
                v.mkNull();
        } else if (cJSON_IsBool(j)) {
                v.mkBool(cJSON_IsTrue(j));
        } else if (cJSON_IsNumber(j)) {
                double d = j->valuedouble;
                if (d == (double)(int64_t)d)
                        v.mkInt((int64_t)d);
                else
                        v.mkFloat(d);
        } else if (cJSON_IsString(j)) {
                std::string_view s = j->valuestring;
                auto it = usedContext.find(storePathOf(s));
                if (it != usedContext.end())
                        nri::mkString(state, v, s, it->second);
                else
                        nri::mkString(state, v, s);
        } else if (cJSON_IsArray(j)) {
                const cJSON *e = j->child;
                nri::mkList(state, v, cJSON_GetArraySize(j), [&](size_t) {
                        Value *elem = state.allocValue();
                        toValue(e, *elem);
                        e = e->next;
                        return elem;
                });
        } else if (cJSON_IsObject(j)) {
                auto bindings = state.buildBindings(cJSON_GetArraySize(j));
                for (const cJSON *e = j->child; e; e = e->next)
                        toValue(e, bindings.alloc(e->string));
                v.mkAttrs(bindings);
        } else {
                throw Error("builtins.repartImage: internal error: unexpected JSON value");
        }
}

void Call::fail(const nri_error &err) {
        Position pos = err.where && err.where->pos ? nri::fromOpaque(err.where->pos) : callPos;
        nri::throwEvalError(state, pos, std::string("builtins.repartImage: ") + err.message);
}

void Call::run(Value &arg, Value &result) {
        nri_node *args = convert(arg, callPos, 0);

        std::string storeDir = state.store->storeDir;
        std::string system = settings.thisSystem.get();
        nri_host host = {};
        host.store_dir = storeDir.c_str();
        host.system = system.c_str();
        host.ctx = this;
        host.import_path = importPath;
        host.use_context = useContext;
        host.coerce = coerce;
        host.read_only = settings.readOnlyMode;

        nri_spec *spec = nullptr;
        nri_error err = {};
        if (nri_spec_from_args(arena.get(), args, &host, &spec, &err) < 0) {
                if (pending)
                        std::rethrow_exception(pending);
                fail(err);
        }

        // The builder: a host program when repart-image-builder names one,
        // else the bundle's, run by the bundle's loader with the bundle's
        // libraries (README: "How the builder reaches the sandbox").  When
        // the bundle cannot be had, the error is the builder's value, so it
        // comes only when the derivation is needed, not for `.image`.
        const std::string &hostBuilder = repartImageSettings->builder.get();
        std::optional<Bundle> bundle;
        std::optional<std::string> bundleError;
        if (hostBuilder.empty()) {
                try {
                        bundle = importBundle(state, repartImageSettings->bundle.get());
                        nri::addOpaque(*state.store, usedContext[bundle->storePath], bundle->storePath);
                } catch (Error &e) {
                        bundleError = "builtins.repartImage: " + errorText(e);
                }
        }

        nri_builder_ref builderRef = {};
        if (bundle)
                builderRef.bundle = bundle->root.c_str();
        else
                builderRef.program = hostBuilder.empty() ? "" : hostBuilder.c_str();
        JsonPtr drvJson(nri_spec_derivation_json(spec, &builderRef, system.c_str()));
        JsonPtr summaryJson(nri_spec_summary_json(spec));
        if (!drvJson || !summaryJson)
                throw Error("builtins.repartImage: out of memory");

        Value *drvAttrs = state.allocValue();
        toValue(drvJson.get(), *drvAttrs);
        if (bundleError) {
                Value *msg = state.allocValue(), *thunk = state.allocValue();
                nri::mkString(state, *msg, *bundleError);
                thunk->mkApp(&state.getBuiltin("throw"), msg);
                Symbol sBuilder = state.symbols.create("builder");
                auto withThunk = state.buildBindings(nri::attrsOf(*drvAttrs).size());
                for (auto &a : nri::attrsOf(*drvAttrs))
                        withThunk.insert(a.name, a.name == sBuilder ? thunk : a.value, a.pos);
                drvAttrs->mkAttrs(withThunk.finish());
        }
        Value drv;
        state.callFunction(state.getBuiltin("derivation"), *drvAttrs, drv, nri::pos(callPos));
        state.forceValue(drv, nri::pos(callPos));

        // The derivation, and what the image will hold under `image`.
        auto bindings = state.buildBindings(nri::attrsOf(drv).size() + 1);
        for (auto &a : nri::attrsOf(drv))
                bindings.insert(a);
        toValue(summaryJson.get(), bindings.alloc("image"));
        result.mkAttrs(bindings.finish());
}

void primRepartImage(EvalState &state, nri::PrimOpPos pos, Value **args, Value &v) {
        Call(state, nri::position(pos)).run(*args[0], v);
}

// The :doc text, in two halves around the formats (file-systems.h).
const char *const repartImageDocHead = R"(
Build a GPT disk image the way NixOS's `image.repart` does, with
systemd-repart's semantics, and return the derivation that builds it.
(Loaded from the nix-repart-image plugin, version )" NRI_VERSION R"(.)

The argument is the attribute set `image.repart` takes:

- `name` (string, required): the image's name; the image file is
  `<name>.raw`, or `<name>_<version>.raw`.
- `version` (string or null, default null).
- `seed` (UUID string, default `"0867da16-f251-457d-a9e8-c31f9a3c220b"`):
  every partition, file-system and disk UUID is derived from it as
  systemd-repart derives them.  `null` draws a random seed at each
  evaluation: the image is then not reproducible.
- `sectorSize` (512, 1024, 2048 or 4096; default 512).
- `imageSize` (`"auto"`, the default, or a size such as `"2G"`).
- `split` (bool, default false): also write each partition to its own file.
- `compression` (`{ enable ? false; algorithm ? "zstd"; level ? 3; }`,
  algorithm `"zstd"` or `"xz"`).
- `architecture` (`"x86-64"` or `"arm64"`, default: the evaluating system's):
  what `Type = "root"` and `"usr"` mean.
- `partitions.<name>` (required; at most 128, the entries of a GPT), in
  name order, each with:
  - `repartConfig` (required): systemd-repart `[Partition]` settings: `Type`,
    `Label`, `UUID`, `Priority`, `Weight`, `PaddingWeight`, `SizeMinBytes`,
    `SizeMaxBytes`, `PaddingMinBytes`, `PaddingMaxBytes`, `Format` ()";
const char *const repartImageDocTail = R"(), `CopyFiles`,
    `MakeDirectories`, `Minimize`, `Flags`, `NoAuto`, `ReadOnly`,
    `GrowFileSystem`, `SplitName`, `Verity` (`data`, `hash`),
    `VerityMatchKey`, `VerityDataBlockSizeBytes`, `VerityHashBlockSizeBytes`,
    `CopyBlocks`;
    values are strings, integers, Booleans, or lists of strings for
    `CopyFiles` and `MakeDirectories`.
  - `contents.<target>.source`: copied to `<target>`: a path (added to the
    store), a derivation or other set with `outPath` or `__toString` (taken
    as `"${set}"`), or a string naming a store path its own context holds
    (`"${drv}/sub"`).  The same goes for a `CopyFiles` source.
  - `storePaths` (list of derivations or store paths): their whole runtime
    closures are copied into the file system.
  - `nixStorePrefix` (default: the store directory, `/nix/store`): where the
    closures land.
  - `stripNixStorePrefix` (bool, default false): land them at `/` instead,
    for a partition mounted at `/nix/store`.
  - `nixPathRegistration` (bool, default false): also write the closure's
    registration (path, NAR hash and size, references), in the format
    `nix-store --load-db` reads, at `/nix-path-registration`, where NixOS's
    stage 2 loads it from on first boot.
  - `deduplicateStore` (bool, default false; ext4 only): identical regular
    files of the closures (same bytes and executable bit) are stored once,
    as hard links, as `nix-store --optimise` makes them, but decided from
    the content alone, so the image does not depend on the building
    machine's store.  Empty files and `contents`/`CopyFiles` are left alone.

The result is a derivation whose output holds the image and
`repart-output.json`.  Its attribute `image` tells, at evaluation time, what
the image will hold: `diskUuid` and, for each partition,
`partitions.<name>.{partno, type, typeUuid, label, uuid, fsUuid}`.  The
`uuid` of a partition with `Verity = "data"` or `"hash"` and no `UUID` is
`null`: systemd-repart makes it half of the dm-verity root hash, which is
known only once the image is built (`roothash` in `repart-output.json`).

```nix
builtins.repartImage {
  name = "image";
  partitions.root = {
    storePaths = [ myPackage ];
    repartConfig = { Type = "root"; Format = "ext4"; Label = "nixos"; Minimize = "guess"; };
  };
}
```
)";

// The :doc text; Nix keeps the pointer for as long as it runs.
const char *repartImageDoc() {
        std::unique_ptr<nri_arena, ArenaDeleter> a(nri_arena_new());

        return (new std::string(std::string(repartImageDocHead) + nri_format_names_code(a.get()) +
                                repartImageDocTail))
            ->c_str();
}

} // namespace

// Called by load.cc when the running Nix is the one the plugin was built for.
void nri_register() {
        repartImageSettings = new RepartImageSettings;
        nri::registerSettings(repartImageSettings);
        nri::registerPrimOp("repartImage", {"image"}, repartImageDoc(), primRepartImage);
}

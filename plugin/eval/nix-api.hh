// nix-api.hh: the seam between the plugin and the Nix C++ API it is built
// against.  Every difference between the Nix versions the plugin supports is
// here, as small inline adapters; primop.cc is written once against them.
//
// plugin/eval/meson.build defines, from nix-expr.pc's version:
//   NRI_NIX_LAYOUT  1: Nix 2.8 (flat headers, config.h)
//                   2: Nix 2.26-2.27 (flat headers, config-*.hh)
//                   3: Nix 2.28 on (nix/util, nix/store, nix/expr)
// and refuses any other Nix, so the branches below are the whole list.
//
// What changed, and where it is absorbed:
//   - headers: where they are, and which generated config header has to come
//     first (without config-expr.hh, 2.26's EvalState has another layout and
//     Nix crashes in ~EvalState);
//   - positions: `const Pos &` (2.8) became the index PosIdx (2.9 on);
//   - values: fields (v.boolean, v.string.s) became methods (v.boolean(),
//     v.string_view()); integers are checked::Checked<int64_t>; lists are
//     built through a ListBuilder; paths are SourcePaths;
//   - string context: PathSet of encoded strings became NixStringContext,
//     a set of variants;
//   - the store: computeStorePathForPath() and addToStore(name, dir) became
//     computeStorePath()/addToStore() of a SourcePath;
//   - errors: hintfmt() and EvalError{...} became state.error<EvalError>();
//   - registration: RegisterPrimOp::Info became PrimOp, whose `fun` became
//     `impl` (2.35).
// Where a difference inside one generation is known, it is detected with a
// `requires` expression rather than a version number, so that the releases
// between the tested ones get whichever form they have.
#pragma once

#if NRI_NIX_LAYOUT == 1
#include <config.h>

#include <derivations.hh>
#include <eval-inline.hh>
#include <eval.hh>
#include <globals.hh>
#include <primops.hh>
#include <store-api.hh>
#elif NRI_NIX_LAYOUT == 2
// Before any other Nix header: they test macros these define.
#include <config-expr.hh>
#include <config-store.hh>
#include <config-util.hh>

#include <config-global.hh>
#include <derivations.hh>
#include <eval-inline.hh>
#include <eval.hh>
#include <globals.hh>
#include <primops.hh>
#include <store-api.hh>
#include <terminal.hh>
#elif NRI_NIX_LAYOUT == 3
#include <nix/expr/eval-inline.hh>
#include <nix/expr/eval.hh>
#include <nix/expr/primops.hh>
#include <nix/store/derivations.hh>
#include <nix/store/globals.hh>
#include <nix/store/store-api.hh>
#include <nix/util/config-global.hh>
#include <nix/util/terminal.hh>
#else
#error "NRI_NIX_LAYOUT is not set: build the plugin with meson (plugin/eval/meson.build)"
#endif

#include <cstdint>
#include <new>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

extern "C" {
#include <nix-repart-image/arena.h>
}

namespace nri {

using nix::Attr;
using nix::EvalState;
using nix::Value;

// ---- positions ---------------------------------------------------------

#if NRI_NIX_LAYOUT == 1
// The position argument of a primop, and a position the plugin keeps.
using PrimOpPos = const nix::Pos &;
using Position = const nix::Pos *;
inline Position position(PrimOpPos p) {
        return &p;
}
inline const nix::Pos &pos(Position p) {
        return *p;
}
// An attribute's position, or `fallback` where Nix knows none.
inline Position attrPosition(const Attr &a, Position fallback) {
        return *a.pos ? &*a.pos : fallback;
}
// The position as the C core keeps it (nri_node.pos): the Pos lives as long
// as the parsed expression.
inline const void *opaquePosition(nri_arena *, Position p) {
        return p;
}
inline Position fromOpaque(const void *p) {
        return static_cast<Position>(p);
}
#else
using PrimOpPos = nix::PosIdx;
using Position = nix::PosIdx;
inline Position position(PrimOpPos p) {
        return p;
}
inline nix::PosIdx pos(Position p) {
        return p;
}
inline Position attrPosition(const Attr &a, Position fallback) {
        return a.pos ? a.pos : fallback;
}
inline const void *opaquePosition(nri_arena *arena, Position p) {
        if (!p)
                return nullptr;
        return new (nri_alloc(arena, sizeof(Position))) Position(p);
}
inline Position fromOpaque(const void *p) {
        return *static_cast<const Position *>(p);
}
#endif

// ---- values ------------------------------------------------------------

#if NRI_NIX_LAYOUT == 1
inline bool boolOf(const Value &v) {
        return v.boolean;
}
inline int64_t intOf(const Value &v) {
        return v.integer;
}
inline double floatOf(const Value &v) {
        return v.fpoint;
}
inline std::string_view stringOf(const Value &v) {
        return v.string.s;
}
inline bool hasContext(const Value &v) {
        return v.string.context && *v.string.context;
}
inline nix::Bindings &attrsOf(const Value &v) {
        return *v.attrs;
}
inline std::string_view nameOf(EvalState &, const Attr &a) {
        return (const std::string &)a.name;
}
#else
inline bool boolOf(const Value &v) {
        return v.boolean();
}
inline int64_t intOf(const Value &v) {
        return v.integer().value;
}
inline double floatOf(const Value &v) {
        return v.fpoint();
}
inline std::string_view stringOf(const Value &v) {
        return v.string_view();
}
inline bool hasContext(const Value &v) {
#if NRI_NIX_LAYOUT == 2
        return v.context() && *v.context();
#else
        return v.context() && v.context()->size() > 0;
#endif
}
inline const nix::Bindings &attrsOf(const Value &v) {
        return *v.attrs();
}
inline std::string_view nameOf(EvalState &state, const Attr &a) {
        return state.symbols[a.name];
}
#endif

inline nix::Symbol outPathSymbol(EvalState &state) {
#if NRI_NIX_LAYOUT < 3
        return state.sOutPath;
#else
        (void)state;
        return EvalState::s.outPath;
#endif
}
inline nix::Symbol toStringSymbol(EvalState &state) {
#if NRI_NIX_LAYOUT < 3
        return state.sToString;
#else
        (void)state;
        return EvalState::s.toString;
#endif
}

inline size_t listSize(const Value &v) {
        return v.listSize();
}
inline Value *listElem(Value &v, size_t i) {
#if NRI_NIX_LAYOUT < 3
        return v.listElems()[i];
#else
        return v.listView()[i];
#endif
}

// A list of n elements, element i being elem(i) (a Value *).
template <class F> void mkList(EvalState &state, Value &v, size_t n, F &&elem) {
#if NRI_NIX_LAYOUT == 1
        state.mkList(v, n);
        for (size_t i = 0; i < n; i++)
                v.listElems()[i] = elem(i);
#else
        auto list = state.buildList(n);
        for (size_t i = 0; i < n; i++)
                list[i] = elem(i);
        v.mkList(list);
#endif
}

// ---- paths and string context -----------------------------------------

#if NRI_NIX_LAYOUT == 1
using Context = nix::PathSet;
// A path value: what the store copy needs, and how it reads.
using SourcePath = std::string;
inline SourcePath pathOf(const Value &v) {
        return v.path;
}
inline std::string showPath(const SourcePath &p) {
        return p;
}
inline void contextOf(const Value &v, Context &ctx) {
        for (const char **c = v.string.context; c && *c; c++)
                ctx.insert(*c);
}
// The context of a string that is the store path itself (what a path
// literal copied to the store carries).
inline void addOpaque(nix::Store &, Context &ctx, const std::string &storePath) {
        ctx.insert(storePath);
}
#else
using Context = nix::NixStringContext;
using SourcePath = nix::SourcePath;
inline SourcePath pathOf(const Value &v) {
        return v.path();
}
inline std::string showPath(const SourcePath &p) {
        return p.path.abs();
}
inline void contextOf(const Value &v, Context &ctx) {
        nix::copyContext(v, ctx);
}
inline void addOpaque(nix::Store &store, Context &ctx, const std::string &storePath) {
        ctx.insert(nix::NixStringContextElem::Opaque{.path = store.parseStorePath(storePath)});
}
#endif

// Strings, copied into the evaluator's memory.
inline void mkString(EvalState &state, Value &v, std::string_view s, const Context &ctx) {
#if NRI_NIX_LAYOUT < 3
        (void)state;
        v.mkString(s, ctx);
#else
        v.mkString(s, ctx, state.mem);
#endif
}
inline void mkString(EvalState &state, Value &v, std::string_view s) {
#if NRI_NIX_LAYOUT < 3
        (void)state;
        v.mkString(s);
#else
        v.mkString(s, state.mem);
#endif
}

// "${v}" for a value that is no set (a set has been taken apart before):
// its string, with its context; a path is added to the store.
inline std::string coerceToString(EvalState &state, Position p, Value &v, Context &ctx) {
#if NRI_NIX_LAYOUT == 1
        return std::string(*state.coerceToString(pos(p), v, ctx, false, true));
#else
        return std::string(*state.coerceToString(
            p, v, ctx, "while coercing a value given to builtins.repartImage", false, true));
#endif
}

// One element of a string's context: a store path; one output of a
// derivation (path: the .drv); or a .drv with all its outputs (what
// drvPath carries).  `why` is set when the element names a derivation
// that is itself an output of another (dynamic derivations), whose .drv
// cannot be read at evaluation time.
struct ContextElem {
        enum class Kind { storePath, output, allOutputs } kind;
        std::string path, output, why;
};

#if NRI_NIX_LAYOUT == 1
// Nix 2.8 writes an element as "/nix/store/…" (a path),
// "!<output>!/nix/store/…-x.drv" (an output) or "=/nix/store/…-x.drv" (a
// drvPath).
inline std::vector<ContextElem> contextElems(nix::Store &, const Context &ctx) {
        std::vector<ContextElem> elems;
        for (auto &c : ctx) {
                if (c.empty() || (c[0] != '!' && c[0] != '='))
                        elems.push_back({ContextElem::Kind::storePath, c, "", ""});
                else if (c[0] == '=')
                        elems.push_back({ContextElem::Kind::allOutputs, c.substr(1), "", ""});
                else {
                        auto bang = c.find('!', 1);
                        elems.push_back({ContextElem::Kind::output,
                                         bang == std::string::npos ? "" : c.substr(bang + 1),
                                         c.substr(1, bang == std::string::npos ? 0 : bang - 1), ""});
                }
        }
        return elems;
}
#else
inline std::vector<ContextElem> contextElems(nix::Store &store, const Context &ctx) {
        std::vector<ContextElem> elems;
        for (auto &c : ctx) {
                std::visit(nix::overloaded{
                               [&](const nix::NixStringContextElem::Opaque &o) {
                                       elems.push_back({ContextElem::Kind::storePath,
                                                        store.printStorePath(o.path), "", ""});
                               },
                               [&](const nix::NixStringContextElem::DrvDeep &d) {
                                       elems.push_back({ContextElem::Kind::allOutputs,
                                                        store.printStorePath(d.drvPath), "", ""});
                               },
                               [&](const nix::NixStringContextElem::Built &b) {
                                       auto *drv =
                                           std::get_if<nix::SingleDerivedPath::Opaque>(&b.drvPath->raw());
                                       elems.push_back({ContextElem::Kind::output,
                                                        drv ? store.printStorePath(drv->path) : "", b.output,
                                                        drv ? "" : "a derivation that is itself built"});
                               },
                           },
                           c.raw);
        }
        return elems;
}
#endif

// Copies a path value into the store as a path literal is copied, and
// returns its store path; ctx gets its context.
inline std::string copyPathToStore(EvalState &state, Context &ctx, const SourcePath &path) {
#if NRI_NIX_LAYOUT == 1
        return state.copyPathToStore(ctx, path);
#else
        return state.store->printStorePath(state.copyPathToStore(ctx, path));
#endif
}

// ---- the store ---------------------------------------------------------

// Which store (a cache key).
inline std::string storeUri(nix::Store &store) {
#if NRI_NIX_LAYOUT < 3
        return store.getUri();
#else
        return store.config.getReference().render();
#endif
}

#if NRI_NIX_LAYOUT > 1
// A directory of the host, read as `nix-store --add` reads it: through the
// file system itself, not through the evaluator's accessor, which pure
// evaluation restricts to the expression's own sources (the directory is the
// plugin's, named by nix.conf, as Nix 2.8 reads it).
inline nix::SourcePath hostDir(const std::string &dir) {
        return nix::SourcePath(nix::getFSSourceAccessor(), nix::CanonPath(dir));
}
#endif

// The store path `nix-store --add dir` gives (NAR, SHA-256), without adding.
inline nix::StorePath computeDirStorePath(EvalState &state, const std::string &name,
                                          const std::string &dir) {
#if NRI_NIX_LAYOUT == 1
        return state.store->computeStorePathForPath(name, dir).first;
#else
        // The method spelt out: 2.26's default argument does not compile.
        return state.store
            ->computeStorePath(name, hostDir(dir), nix::ContentAddressMethod::Raw::NixArchive,
                               nix::HashAlgorithm::SHA256)
            .first;
#endif
}

// `nix-store --add dir`.
inline nix::StorePath addDirToStore(EvalState &state, const std::string &name, const std::string &dir) {
#if NRI_NIX_LAYOUT == 1
        return state.store->addToStore(name, dir);
#else
        return state.store->addToStore(name, hostDir(dir));
#endif
}

// ---- errors ------------------------------------------------------------

// An evaluation error with this message (taken as it is, not as a format)
// at this position.
[[noreturn]] inline void throwEvalError(EvalState &state, Position p, const std::string &msg) {
#if NRI_NIX_LAYOUT == 1
        (void)state;
        throw nix::EvalError({.msg = nix::hintfmt(msg), .errPos = pos(p)});
#else
        state.error<nix::EvalError>(msg).atPos(p).debugThrow();
#endif
}

// ---- registration ------------------------------------------------------

using PrimOpFun = void(EvalState &, PrimOpPos, Value **, Value &);

#if NRI_NIX_LAYOUT > 1
// The implementation is PrimOp::fun up to 2.33 and PrimOp::impl in 2.35 (a
// template, so that only the branch for this Nix's PrimOp is compiled).
template <class P = nix::PrimOp>
P makePrimOp(const char *name, std::vector<std::string> args, size_t arity, const char *doc,
             PrimOpFun *fun) {
        if constexpr (requires(P p) { p.impl; })
                return P{.name = name, .args = std::move(args), .arity = arity, .doc = doc, .impl = fun};
        else
                return P{.name = name, .args = std::move(args), .arity = arity, .doc = doc, .fun = fun};
}
#endif

// Registers builtins.<name>.  Called once, from nri_register() (load.cc has
// checked the Nix version first), so the object is made here, not as a
// static one that every load would construct.
inline void registerPrimOp(const char *name, std::vector<std::string> args, const char *doc,
                           PrimOpFun *fun) {
        size_t arity = args.size();
#if NRI_NIX_LAYOUT == 1
        new nix::RegisterPrimOp(nix::RegisterPrimOp::Info{
            .name = name, .args = std::move(args), .arity = arity, .doc = doc, .fun = fun});
#else
        new nix::RegisterPrimOp(makePrimOp(name, std::move(args), arity, doc, fun));
#endif
}

inline void registerSettings(nix::Config *config) {
        new nix::GlobalConfig::Register(config);
}

} // namespace nri

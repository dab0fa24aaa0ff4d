/* node.h: the evaluated argument of builtins.repartImage, as a C tree.
 *
 * The C++ shim forces the Nix value down to the depth the argument's schema
 * needs (NRI_NODE_MAX_DEPTH) and converts it into this tree; the C core never
 * sees a Nix type.  A set Nix would coerce to a string (a derivation, or any
 * set with outPath or __toString) is not descended into: it becomes an
 * NRI_COERCIBLE leaf, which the core has the shim coerce (nri_host.coerce)
 * where a string may stand.  Each string carries the facts of its context
 * (nri_context) the core needs to tell what a build that holds the string
 * may read. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* args.partitions.<p>.contents.<target>.source is the deepest place of the
 * schema (depth 5); one more level lets the validator name what it found. */
#define NRI_NODE_MAX_DEPTH 6

typedef enum nri_kind {
        NRI_NULL,
        NRI_BOOL,
        NRI_INT,
        NRI_FLOAT,
        NRI_STRING,    /* str and context; has_context when it refers to store paths */
        NRI_PATH,      /* str: a path literal, not yet in the store */
        NRI_ATTRS,     /* attrs, sorted by name (byte order) */
        NRI_LIST,      /* list */
        NRI_COERCIBLE, /* a set with __toString or outPath; nothing else is known */
        NRI_FUNCTION,  /* a lambda or primop */
        NRI_DEEP,      /* below NRI_NODE_MAX_DEPTH: not forced */
        _NRI_KIND_MAX,
} nri_kind;

typedef struct nri_node nri_node;

/* What the context of a string makes available to the build of a derivation
 * that holds the string: the store paths the derivation will depend on. */
typedef struct nri_context {
        /* Each plain store path of the context (a path added to the store,
         * builtins.storePath, …), each derivation output it names
         * ("!out!/nix/store/…-a.drv", resolved to the output's path through
         * the store), and for "=/nix/store/…-a.drv" (a drvPath) the
         * derivation itself and all its outputs. */
        const char *const *paths;
        size_t n_paths;
        /* A context element the shim could not resolve into store paths, in
         * words ("output out of /nix/store/…-a.drv, which is not in the
         * store"), or NULL.  Read-only evaluation writes no .drv files, so
         * the outputs of a derivation evaluated there cannot be read. */
        const char *unresolved;
} nri_context;

typedef struct nri_attr {
        const char *name;
        nri_node *value;
} nri_attr;

struct nri_node {
        nri_kind kind;
        /* Where the value was written: the shim's opaque position of the
         * attribute that holds it (a list element has its list's position).
         * NULL when unknown. */
        const void *pos;
        bool has_context;
        nri_context context; /* NRI_STRING */
        union {
                bool b;
                int64_t i;
                double f;
                struct {
                        const char *s;
                        size_t len;
                } str;
                struct {
                        size_t n;
                        nri_attr *items;
                } attrs;
                struct {
                        size_t n;
                        nri_node **items;
                } list;
        };
};

/* The attribute called name, or NULL. */
const nri_node *nri_node_attr(const nri_node *attrs, const char *name);
/* "a string", "an attribute set", … for messages. */
const char *nri_kind_describe(nri_kind k);

/* node.h: the evaluated argument of builtins.repartImage, as a C tree.
 *
 * The C++ shim forces the Nix value down to the depth the argument's schema
 * needs (NRI_NODE_MAX_DEPTH) and converts it into this tree; the C core never
 * sees a Nix type.  Derivations are not descended into: they become
 * NRI_DERIVATION nodes holding their outPath. */
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
        NRI_STRING,     /* str; has_context when it refers to store paths */
        NRI_PATH,       /* str: a path literal, not yet in the store */
        NRI_ATTRS,      /* attrs, sorted by name (byte order) */
        NRI_LIST,       /* list */
        NRI_DERIVATION, /* str: its outPath (with context) */
        NRI_FUNCTION,   /* a lambda or primop */
        NRI_DEEP,       /* below NRI_NODE_MAX_DEPTH: not forced */
        _NRI_KIND_MAX,
} nri_kind;

typedef struct nri_node nri_node;

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

/* node.c: looking things up in the value tree. */
#include "node.h"

#include <string.h>

const nri_node *nri_node_attr(const nri_node *attrs, const char *name) {
        size_t lo = 0, hi;

        if (!attrs || attrs->kind != NRI_ATTRS || !name)
                return NULL;

        /* The shim sorts attributes by name (strcmp order), so that lookups
         * here need not depend on Nix's symbol order. */
        hi = attrs->attrs.n;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp(name, attrs->attrs.items[mid].name);

                if (c == 0)
                        return attrs->attrs.items[mid].value;
                if (c < 0)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        return NULL;
}

const char *nri_kind_describe(nri_kind k) {
        static const char *const table[_NRI_KIND_MAX] = {
            [NRI_NULL] = "null",
            [NRI_BOOL] = "a Boolean",
            [NRI_INT] = "an integer",
            [NRI_FLOAT] = "a float",
            [NRI_STRING] = "a string",
            [NRI_PATH] = "a path",
            [NRI_ATTRS] = "an attribute set",
            [NRI_LIST] = "a list",
            [NRI_COERCIBLE] = "a derivation (a set with outPath or __toString)",
            [NRI_FUNCTION] = "a function",
            [NRI_DEEP] = "a nested value",
        };

        if ((unsigned)k >= _NRI_KIND_MAX)
                return "a value";
        return table[k];
}

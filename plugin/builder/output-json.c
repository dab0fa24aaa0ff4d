/* output-json.c: repart-output.json as systemd-repart 252 prints it.
 *
 * 252 prints its partition table (context_dump_partitions) through the
 * table-to-JSON path of its format-table.c: column names with spaces turned
 * into underscores, hidden columns left out, and json.c's pretty printer.
 * cJSON holds the tree; its own printer's layout differs ("key":\tvalue), so
 * the tree is printed here the way json.c prints it. */
#include "output-json.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libfdisk/libfdisk.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nix-repart-image/macro.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(cJSON *, cJSON_Delete);
DEFINE_TRIVIAL_CLEANUP_FUNC(FILE *, fclose);

static bool add_string(cJSON *o, const char *key, const char *value) {
        return cJSON_AddStringToObject(o, key, value) != NULL;
}

/* Sizes are below 2^53 (spec.h refuses more), so a double holds them. */
static bool add_size(cJSON *o, const char *key, uint64_t value) {
        return cJSON_AddNumberToObject(o, key, (double)value) != NULL;
}

static cJSON *build_one(const char *image, size_t partno, const nri_output_part *p, bool roothash) {
        _cleanup_(cJSON_Deletep) cJSON *o = cJSON_CreateObject();
        _cleanup_free_ char *node = NULL;
        bool ok;

        if (!o)
                return NULL;
        /* 252: fdisk_partname(node, partno + 1), "-" when there is none. */
        node = fdisk_partname(image, partno + 1);

        ok = add_string(o, "type", p->type) &&
             add_string(o, "label", p->label && *p->label ? p->label : "-") &&
             add_string(o, "uuid", p->uuid) && add_string(o, "file", p->file ? p->file : "-") &&
             add_string(o, "node", node ? node : "-") && add_size(o, "offset", p->offset) &&
             add_size(o, "old_size", 0) && add_size(o, "raw_size", p->size) &&
             add_size(o, "old_padding", 0) && add_size(o, "raw_padding", p->padding) &&
             add_string(o, "activity", "create");
        /* 252 shows the column once a hash partition has a root hash: the
         * hash partition's, null on every other row (its data partition's
         * too). */
        if (ok && roothash)
                ok = p->roothash ? add_string(o, "roothash", p->roothash)
                                 : cJSON_AddNullToObject(o, "roothash") != NULL;
        if (ok && p->split_path)
                ok = add_string(o, "split_path", p->split_path);
        if (!ok)
                return NULL;

        cJSON *ret = o;
        o = NULL;
        return ret;
}

cJSON *nri_output_json_build(const char *image, const nri_output_part *parts, size_t n) {
        _cleanup_(cJSON_Deletep) cJSON *array = cJSON_CreateArray();
        bool roothash = false;

        if (!array)
                return NULL;
        for (size_t i = 0; i < n; i++)
                roothash = roothash || parts[i].roothash;
        for (size_t i = 0; i < n; i++) {
                cJSON *o = build_one(image, i, &parts[i], roothash);

                if (!o || !cJSON_AddItemToArray(array, o)) {
                        cJSON_Delete(o);
                        return NULL;
                }
        }

        cJSON *ret = array;
        array = NULL;
        return ret;
}

/* json.c's json_format_string(): the two JSON escapes, the five short
 * control escapes, \uXXXX for other control characters, all else (UTF-8
 * included) as it is. */
static void print_string(FILE *f, const char *s) {
        fputc('"', f);
        for (const char *q = s; *q; q++)
                switch (*q) {
                case '"':
                        fputs("\\\"", f);
                        break;
                case '\\':
                        fputs("\\\\", f);
                        break;
                case '\b':
                        fputs("\\b", f);
                        break;
                case '\f':
                        fputs("\\f", f);
                        break;
                case '\n':
                        fputs("\\n", f);
                        break;
                case '\r':
                        fputs("\\r", f);
                        break;
                case '\t':
                        fputs("\\t", f);
                        break;
                default:
                        if ((signed char)*q >= 0 && *q < ' ')
                                fprintf(f, "\\u%04x", (unsigned)*q);
                        else
                                fputc(*q, f);
                }
        fputc('"', f);
}

static void print_indent(FILE *f, unsigned depth) {
        for (unsigned i = 0; i < depth; i++)
                fputc('\t', f);
}

/* json.c's json_format() with JSON_FORMAT_PRETTY: an opening bracket, each
 * member on its own line one tab deeper, ",\n" between members, the closing
 * bracket on its own line; "[]" and "{}" when empty. */
static int print_value(FILE *f, const cJSON *v, unsigned depth) {
        const cJSON *c;

        if (cJSON_IsString(v)) {
                print_string(f, v->valuestring);
                return 0;
        }
        if (cJSON_IsNull(v)) {
                fputs("null", f);
                return 0;
        }
        if (cJSON_IsNumber(v)) {
                if (v->valuedouble < 0 || v->valuedouble >= 18446744073709551616.0)
                        return -EINVAL;
                fprintf(f, "%" PRIu64, (uint64_t)v->valuedouble);
                return 0;
        }
        if (!cJSON_IsArray(v) && !cJSON_IsObject(v))
                return -EINVAL;

        bool object = cJSON_IsObject(v);
        if (!v->child) {
                fputs(object ? "{}" : "[]", f);
                return 0;
        }
        fputs(object ? "{\n" : "[\n", f);
        for (c = v->child; c; c = c->next) {
                int r;

                print_indent(f, depth + 1);
                if (object) {
                        print_string(f, c->string);
                        fputs(" : ", f);
                }
                r = print_value(f, c, depth + 1);
                if (r < 0)
                        return r;
                fputs(c->next ? ",\n" : "\n", f);
        }
        print_indent(f, depth);
        fputc(object ? '}' : ']', f);
        return 0;
}

char *nri_output_json_print(const cJSON *json) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        int r;

        if (!f)
                return NULL;
        r = print_value(f, json, 0);
        fputc('\n', f);
        if (fclose(f) != 0 || r < 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

int nri_output_json_write(const char *path, const char *image, const nri_output_part *parts, size_t n) {
        _cleanup_(cJSON_Deletep) cJSON *json = NULL;
        _cleanup_free_ char *text = NULL;
        _cleanup_(fclosep) FILE *f = NULL;
        size_t len;
        int fd;

        json = nri_output_json_build(image, parts, n);
        if (!json)
                return -ENOMEM;
        text = nri_output_json_print(json);
        if (!text)
                return -ENOMEM;

        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        f = fdopen(fd, "w");
        if (!f) {
                int r = -errno;
                close(fd);
                return r;
        }
        len = strlen(text);
        if (fwrite(text, 1, len, f) != len || fflush(f) != 0)
                return errno > 0 ? -errno : -EIO;
        if (fclose(f) != 0) {
                f = NULL;
                return errno > 0 ? -errno : -EIO;
        }
        f = NULL;
        return 0;
}

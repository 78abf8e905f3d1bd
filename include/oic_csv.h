/* oic_csv.h: the RFC 4180 tokenizer and typed column builder for one chunk.
 *
 * A chunk is a run of whole records (the caller splits the file with
 * oic_find_split). oic_parse_chunk walks it record by record, field by field,
 * and converts each field straight into its column's output buffers, which
 * the caller allocated. On error it stops and says where: the line (relative
 * to the chunk), the 1-based field and the byte offset (relative to the chunk).
 *
 * Line terminators are LF, CRLF and bare CR. Quoted fields may hold commas,
 * doubled quotes and terminators; terminators inside quotes count as lines.
 */
#ifndef OIC_CSV_H
#define OIC_CSV_H

#include <locale.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "oic_dict.h"
#include "oic_status.h"
#include "oic_text.h"

/* Column types: the values of oicore.schema.ColumnType. */
enum {
    OIC_COL_STRING = 0,
    OIC_COL_IMAGE_ID = 1,
    OIC_COL_DICTIONARY = 2,
    OIC_COL_FLOAT64 = 3,
    OIC_COL_INT8 = 4,
    OIC_COL_INT32 = 5,
    OIC_COL_INT64 = 6
};

typedef struct {
    int32_t type;       /* OIC_COL_* */
    int32_t required;   /* an empty field is an error */
    void *values;       /* rows_cap values: uint64, double, int8/32/64, or int32 codes */
    uint8_t *validity;  /* rows_cap bits, zeroed by the caller; NULL unless optional numeric */
    int64_t null_count;
    int32_t *offsets;   /* string: rows_cap + 1 */
    uint8_t *data;      /* string: data_cap bytes */
    int64_t data_cap, data_len;
    const oic_dict *base; /* dictionary: the vocabulary so far, shared and read-only (or NULL) */
    oic_dict *dict;     /* dictionary: this chunk's new values, coded after the base's */
    const uint8_t *last; /* dictionary: the previous value, which most rows repeat */
    int64_t last_len;
    int32_t last_code;
    /* dictionary, fast path (oic_csv_fast.h): the last value looked up, as key words */
    uint64_t fast_w0, fast_w1;
    int64_t fast_len;   /* -1: none yet */
    int32_t fast_code;
    /* ... and as the bytes a field repeating it holds, with its delimiter (under masks) */
    uint64_t rep_w0, rep_w1, rep_m0, rep_m1;
    int64_t rep_len;    /* -1: none */
    uint8_t delim;      /* the byte after this column's fields */
    /* dictionary, fast path: codes are the dictionary's, or through gmap (gmap_len codes, as
     * far as known) the table's; the rows left with dictionary codes are listed in fix,
     * unless all_local says any row may hold one */
    const int32_t *gmap;
    int64_t gmap_len;
    int32_t *fix;
    int64_t fix_len, fix_cap;
    int32_t all_local;
} oic_column;

typedef struct {
    const uint8_t *buf;
    int64_t len;
    int at_eof;          /* the chunk ends the file: the last record may lack a terminator */
    locale_t c_locale;
    int64_t pos;         /* in: where to start; out: after the last whole record parsed */
    int64_t lines;       /* out: terminators consumed (relative line count) */
    int64_t rows;        /* out: records converted */
    int64_t rows_cap;    /* in: capacity of the column buffers */
    int64_t max_rows;    /* in: stop after this many records (-1: no limit) */
    /* error, when the status is not OIC_OK */
    int64_t err_line;    /* relative: terminators before the record (or the opening quote) */
    int32_t err_column;  /* 1-based field */
    int64_t err_offset;  /* relative byte offset */
} oic_parser;

/* Bytes that end an unquoted field, or are an error in one. */
static const uint8_t OIC_SPECIAL[256] = {
    ['\n'] = 1, ['\r'] = 1, [','] = 1, ['"'] = 1,
};

/* How many bytes of s[0:n] equal b, 16 at a time. */
static inline int64_t oic_count_byte(const uint8_t *s, int64_t n, uint8_t b)
{
    int64_t count = 0, i = 0;
#if defined(__SSE2__)
    /* Per-byte counters (a match is -1, subtracted), summed every 255 rounds. */
    const __m128i vb = _mm_set1_epi8((char)b), zero = _mm_setzero_si128();
    while (i + 16 <= n) {
        __m128i acc = zero;
        for (int r = 0; r < 255 && i + 16 <= n; r++, i += 16)
            acc = _mm_sub_epi8(acc, _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(s + i)), vb));
        __m128i sums = _mm_sad_epu8(acc, zero);
        count += _mm_cvtsi128_si64(sums) + _mm_cvtsi128_si64(_mm_unpackhi_epi64(sums, sums));
    }
#endif
    for (; i < n; i++)
        count += s[i] == b;
    return count;
}

/* Counts line terminators in s[0:n] (CRLF once), treating a CR at the end as one. */
static inline int64_t oic_count_terminators(const uint8_t *s, int64_t n)
{
    if (n <= 0 || !memchr(s, '\r', (size_t)n))
        return oic_count_byte(s, n, '\n');
    int64_t count = 0;
    for (int64_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c == '\n')
            count++;
        else if (c == '\r')
            count += (i + 1 >= n || s[i + 1] != '\n');
    }
    return count;
}

/* Bytes a caller must keep readable after a chunk's end for the fast path
 * (oic_csv_fast.h: word loads may run past the last field). */
#define OIC_PAD 64

/* Word-at-a-time search (SWAR): a mask with the high bit set in each byte of
 * w equal to b. Bits above the lowest set one may be false positives, so only
 * the lowest is used. */
#define OIC_ONES UINT64_C(0x0101010101010101)
#define OIC_HIGHS UINT64_C(0x8080808080808080)
static inline uint64_t oic_bytes_equal_to(uint64_t w, uint8_t b)
{
    uint64_t x = w ^ (OIC_ONES * b);
    return (x - OIC_ONES) & ~x & OIC_HIGHS;
}

/* The first position in s[pos:len] holding ',', '"', CR or LF, or len. */
static inline int64_t oic_scan_unquoted(const uint8_t *s, int64_t pos, int64_t len)
{
#if defined(__SSE2__)
    const __m128i comma = _mm_set1_epi8(','), lf = _mm_set1_epi8('\n'), cr = _mm_set1_epi8('\r'),
                  quote = _mm_set1_epi8('"');
    while (pos + 16 <= len) {
        __m128i x = _mm_loadu_si128((const __m128i *)(s + pos));
        __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, comma), _mm_cmpeq_epi8(x, lf)),
                                   _mm_or_si128(_mm_cmpeq_epi8(x, cr), _mm_cmpeq_epi8(x, quote)));
        unsigned mask = (unsigned)_mm_movemask_epi8(hit);
        if (mask)
            return pos + __builtin_ctz(mask);
        pos += 16;
    }
#endif
    while (pos + 8 <= len) {
        uint64_t w;
        memcpy(&w, s + pos, 8);
        uint64_t hits = oic_bytes_equal_to(w, ',') | oic_bytes_equal_to(w, '\n') | oic_bytes_equal_to(w, '\r') |
                        oic_bytes_equal_to(w, '"');
        if (hits)
            return pos + (__builtin_ctzll(hits) >> 3);
        pos += 8;
    }
    while (pos < len && !OIC_SPECIAL[s[pos]])
        pos++;
    return pos;
}


/* The length of the longest prefix of s[0:n] that ends with a whole record,
 * given that s starts at a record boundary, or 0 if there is none yet.
 * In valid CSV every '"' toggles the in-quotes state (a doubled quote toggles
 * twice), so a terminator ends a record exactly when the quotes before it are
 * even: count them all at memory speed, then walk back from the end, usually
 * over less than a record. A CR is a split point only when the next byte is
 * known and is not LF. Invalid quotes make the parity wrong only after the
 * parser's own error. */
static inline int64_t oic_find_split(const uint8_t *s, int64_t n)
{
    int64_t quotes = n > 0 && memchr(s, '"', (size_t)n) ? oic_count_byte(s, n, '"') : 0;
    for (int64_t i = n - 1; i >= 0; i--) {
        uint8_t c = s[i];
        if (c == '"')
            quotes--; /* now the quotes in s[0:i] */
        else if (!(quotes & 1) && (c == '\n' || (c == '\r' && i + 1 < n && s[i + 1] != '\n')))
            return i + 1;
    }
    return 0;
}

static inline void oic_set_valid(oic_column *col, int64_t row)
{
    col->validity[row >> 3] |= (uint8_t)(1u << (row & 7));
}

/* Copies a quoted field's content, turning each doubled quote into one. */
static inline int64_t oic_unescape(uint8_t *dst, const uint8_t *s, int64_t n)
{
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        dst[k++] = s[i];
        if (s[i] == '"')
            i++; /* the second quote of the pair */
    }
    return k;
}

/* The code of a dictionary value: the shared base vocabulary's when the value
 * is there, else one after the base's codes from the chunk's own dictionary,
 * which adds it when new (*added = 1). */
static inline oic_status oic_column_code(oic_column *col, const uint8_t *v, size_t n, uint64_t w0, uint64_t w1,
                                         uint64_t h, int32_t *code, int *added)
{
    int32_t base_count = col->base ? col->base->count : 0;
    if (col->base) {
        int32_t c = oic_dict_find(col->base, v, n, w0, w1, h);
        if (c >= 0) {
            *code = c;
            *added = 0;
            return OIC_OK;
        }
    }
    int32_t local;
    oic_status st = oic_dict_intern_hashed(col->dict, v, n, w0, w1, h, &local, added);
    if (st == OIC_OK && local > INT32_MAX - base_count)
        return OIC_ERR_CAPACITY;
    *code = base_count + local;
    return st;
}

/* Converts one field. s[0:n] is the content (inside the quotes, still escaped
 * when `escaped`); *bad_at receives the offset within s of an invalid byte. */
static inline oic_status oic_convert_field(oic_parser *p, oic_column *col, int64_t row, const uint8_t *s,
                                           int64_t n, int escaped, int64_t *bad_at)
{
    *bad_at = -1;
    switch (col->type) {
    case OIC_COL_STRING: {
        if (col->data_len + n > col->data_cap)
            return OIC_ERR_CAPACITY;
        uint8_t *dst = col->data + col->data_len;
        int64_t k = escaped ? oic_unescape(dst, s, n) : (memcpy(dst, s, (size_t)n), n);
        size_t bad = oic_utf8_invalid_at(dst, (size_t)k);
        if (bad != (size_t)k) {
            /* Map the offset back through the unescaping. */
            int64_t j = 0, i = 0;
            while (j < (int64_t)bad) {
                if (s[i] == '"')
                    i++;
                i++;
                j++;
            }
            *bad_at = i;
            return OIC_ERR_UTF8;
        }
        if (col->data_len + k > INT32_MAX)
            return OIC_ERR_CAPACITY;
        col->data_len += k;
        col->offsets[row + 1] = (int32_t)col->data_len;
        return OIC_OK;
    }
    case OIC_COL_DICTIONARY: {
        if (n == 0 && col->required)
            return OIC_ERR_EMPTY_REQUIRED;
        uint8_t small[256];
        uint8_t *tmp = NULL;
        const uint8_t *v = s;
        int64_t len = n;
        if (escaped) {
            tmp = n <= (int64_t)sizeof small ? small : (uint8_t *)malloc((size_t)n);
            if (!tmp)
                return OIC_ERR_NO_MEMORY;
            len = oic_unescape(tmp, s, n);
            v = tmp;
        }
        oic_status st = OIC_OK;
        int32_t code;
        if (col->last && col->last_len == len && oic_same_bytes(col->last, v, len)) {
            code = col->last_code;
        } else {
            int added;
            uint64_t w0, w1;
            oic_key_words(v, (size_t)len, &w0, &w1);
            st = oic_column_code(col, v, (size_t)len, w0, w1, oic_hash_value(v, (size_t)len, w0, w1), &code, &added);
            if (st == OIC_OK && added) {
                size_t bad = oic_utf8_invalid_at(v, (size_t)len);
                if (bad != (size_t)len) {
                    int64_t j = 0, i = 0;
                    while (j < (int64_t)bad) {
                        if (escaped && s[i] == '"')
                            i++;
                        i++;
                        j++;
                    }
                    *bad_at = i;
                    st = OIC_ERR_UTF8;
                }
            }
            if (st == OIC_OK && !escaped) {
                /* Points into the chunk, which outlives the parse. */
                col->last = s;
                col->last_len = n;
                col->last_code = code;
            }
        }
        if (tmp && tmp != small)
            free(tmp);
        if (st == OIC_OK)
            ((int32_t *)col->values)[row] = code;
        return st;
    }
    case OIC_COL_IMAGE_ID:
        if (n == 0)
            return OIC_ERR_EMPTY_REQUIRED;
        return oic_parse_image_id(s, (size_t)n, (uint64_t *)col->values + row);
    default:
        break;
    }
    /* Numeric columns. */
    if (n == 0) {
        if (col->required)
            return OIC_ERR_EMPTY_REQUIRED;
        switch (col->type) {
        case OIC_COL_FLOAT64: ((double *)col->values)[row] = 0; break;
        case OIC_COL_INT8: ((int8_t *)col->values)[row] = 0; break;
        case OIC_COL_INT32: ((int32_t *)col->values)[row] = 0; break;
        default: ((int64_t *)col->values)[row] = 0; break;
        }
        col->null_count++;
        return OIC_OK;
    }
    oic_status st;
    int64_t iv;
    switch (col->type) {
    case OIC_COL_FLOAT64:
        st = oic_parse_double(s, (size_t)n, p->c_locale, (double *)col->values + row);
        break;
    case OIC_COL_INT8:
        st = oic_parse_int(s, (size_t)n, INT8_MIN, INT8_MAX, &iv);
        if (st == OIC_OK)
            ((int8_t *)col->values)[row] = (int8_t)iv;
        break;
    case OIC_COL_INT32:
        st = oic_parse_int(s, (size_t)n, INT32_MIN, INT32_MAX, &iv);
        if (st == OIC_OK)
            ((int32_t *)col->values)[row] = (int32_t)iv;
        break;
    default:
        st = oic_parse_int(s, (size_t)n, INT64_MIN, INT64_MAX, &iv);
        if (st == OIC_OK)
            ((int64_t *)col->values)[row] = iv;
        break;
    }
    if (st == OIC_OK && col->validity)
        oic_set_valid(col, row);
    return st;
}

/* One field found by oic_next_field. */
typedef struct {
    int64_t start;        /* first byte of the field (its opening quote, if quoted) */
    int64_t content;      /* content: inside the quotes, still escaped */
    int64_t content_end;
    int escaped;          /* the content holds doubled quotes */
    int last;             /* the field ends its record */
} oic_field;

/* Reads the field at *pos, then its delimiter or terminator. *lines counts
 * the terminators passed. On error sets p->err_* (column = field + 1). */
static inline oic_status oic_next_field(oic_parser *p, int64_t *pos_io, int64_t *lines_io, int64_t rec_line,
                                        int32_t field, oic_field *out)
{
    const uint8_t *buf = p->buf;
    const int64_t len = p->len;
    int64_t pos = *pos_io;
    out->start = pos;
    out->escaped = 0;
    if (pos < len && buf[pos] == '"') {
        const int64_t open_line = *lines_io;
        int64_t lines = *lines_io;
        out->content = ++pos;
        for (;;) {
            const uint8_t *q = (const uint8_t *)memchr(buf + pos, '"', (size_t)(len - pos));
            if (!q) {
                if (!p->at_eof)
                    return OIC_NEED_MORE;
                p->err_line = open_line;
                p->err_column = field + 1;
                p->err_offset = out->start;
                return OIC_ERR_UNTERMINATED_QUOTE;
            }
            lines += oic_count_terminators(buf + pos, q - (buf + pos));
            pos = q - buf + 1;
            if (pos < len && buf[pos] == '"') {
                out->escaped = 1;
                pos++;
                continue;
            }
            break;
        }
        out->content_end = pos - 1;
        if (pos < len && buf[pos] != ',' && buf[pos] != '\n' && buf[pos] != '\r') {
            p->err_line = rec_line;
            p->err_column = field + 1;
            p->err_offset = pos;
            return OIC_ERR_AFTER_QUOTE;
        }
        *lines_io = lines;
    } else {
        out->content = pos;
        pos = oic_scan_unquoted(buf, pos, len);
        if (pos < len && buf[pos] == '"') {
            p->err_line = rec_line;
            p->err_column = field + 1;
            p->err_offset = pos;
            return OIC_ERR_STRAY_QUOTE;
        }
        out->content_end = pos;
    }
    /* The delimiter or terminator. */
    if (pos >= len) {
        if (!p->at_eof)
            return OIC_NEED_MORE; /* the next byte could still be ',' or '"' */
        out->last = 1;
    } else if (buf[pos] == ',') {
        pos++;
        out->last = 0;
    } else {
        /* A CR that ends the chunk is a whole terminator: oic_find_split cuts
         * after a CR only when the next byte is known not to be LF. */
        if (buf[pos] == '\r' && pos + 1 < len && buf[pos + 1] == '\n')
            pos++;
        pos++;
        (*lines_io)++;
        out->last = 1;
    }
    *pos_io = pos;
    return OIC_OK;
}

/* Parses records from p->pos until the chunk (or max_rows) ends. On
 * OIC_NEED_MORE, p->pos is the start of the unfinished record. */
static inline oic_status oic_parse_chunk(oic_parser *p, oic_column *cols, int32_t ncols)
{
    const uint8_t *buf = p->buf;
    const int64_t len = p->len;
    int64_t pos = p->pos, lines = p->lines;
    oic_status st = OIC_OK;

    while (pos < len && (p->max_rows < 0 || p->rows < p->max_rows)) {
        const int64_t rec_start = pos, rec_line = lines, row = p->rows;
        if (buf[pos] == '\n' || buf[pos] == '\r') {
            p->err_line = lines;
            p->err_column = 0;
            p->err_offset = pos;
            st = OIC_ERR_EMPTY_LINE;
            break;
        }
        if (row >= p->rows_cap) {
            p->err_line = lines;
            p->err_column = 0;
            p->err_offset = pos;
            st = OIC_ERR_CAPACITY;
            break;
        }
        for (int32_t f = 0;; f++) {
            oic_field fl;
            if (f >= ncols) {
                p->err_line = rec_line;
                p->err_column = ncols + 1;
                p->err_offset = pos;
                st = OIC_ERR_TOO_MANY_FIELDS;
                goto out;
            }
            st = oic_next_field(p, &pos, &lines, rec_line, f, &fl);
            if (st != OIC_OK) {
                if (st == OIC_NEED_MORE) {
                    pos = rec_start;
                    lines = rec_line;
                }
                goto out;
            }
            int64_t bad_at;
            st = oic_convert_field(p, &cols[f], row, buf + fl.content, fl.content_end - fl.content, fl.escaped,
                                   &bad_at);
            if (st != OIC_OK) {
                p->err_line = rec_line;
                p->err_column = f + 1;
                p->err_offset = bad_at >= 0 ? fl.content + bad_at : fl.start;
                goto out;
            }
            if (fl.last) {
                if (f + 1 != ncols) {
                    p->err_line = rec_line;
                    p->err_column = f + 2;
                    p->err_offset = fl.content_end + (buf[fl.start] == '"');
                    st = OIC_ERR_TOO_FEW_FIELDS;
                    goto out;
                }
                break;
            }
        }
        p->rows = row + 1;
    }
out:
    p->pos = pos;
    p->lines = lines;
    return st;
}

/* Tokenizes the record at p->pos (the header) into at most max_fields spans
 * (content start, content end, escaped), checking that each is UTF-8. Sets
 * *nfields, or *nfields = max_fields + 1 when there are more. */
static inline oic_status oic_read_record(oic_parser *p, int64_t *spans, int32_t max_fields, int32_t *nfields)
{
    int64_t pos = p->pos, lines = p->lines;
    const int64_t rec_line = lines;
    *nfields = 0;
    if (pos >= p->len) {
        p->err_line = lines;
        p->err_column = 0;
        p->err_offset = pos;
        return p->at_eof ? OIC_ERR_EMPTY_LINE : OIC_NEED_MORE;
    }
    if (p->buf[pos] == '\n' || p->buf[pos] == '\r') {
        p->err_line = lines;
        p->err_column = 0;
        p->err_offset = pos;
        return OIC_ERR_EMPTY_LINE;
    }
    for (int32_t f = 0;; f++) {
        oic_field fl;
        oic_status st = oic_next_field(p, &pos, &lines, rec_line, f, &fl);
        if (st != OIC_OK)
            return st;
        /* Each field is decoded before the next is read, as the reference reader does. */
        size_t bad = oic_utf8_invalid_at(p->buf + fl.content, (size_t)(fl.content_end - fl.content));
        if (bad != (size_t)(fl.content_end - fl.content)) {
            p->err_line = rec_line;
            p->err_column = f + 1;
            p->err_offset = fl.content + (int64_t)bad; /* quotes are ASCII: the escaped span is as valid */
            return OIC_ERR_UTF8;
        }
        if (f < max_fields) {
            spans[3 * f] = fl.content;
            spans[3 * f + 1] = fl.content_end;
            spans[3 * f + 2] = fl.escaped;
        }
        *nfields = f < max_fields ? f + 1 : max_fields + 1;
        if (fl.last)
            break;
    }
    p->pos = pos;
    p->lines = lines;
    return OIC_OK;
}

#endif

# Every C declaration oicore's Cython modules use, from include/*.h.

from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint32_t, uint64_t


cdef extern from "<locale.h>" nogil:
    ctypedef struct __locale_struct:
        pass
    ctypedef __locale_struct *locale_t
    int LC_ALL_MASK
    locale_t newlocale(int category_mask, const char *locale, locale_t base)


cdef extern from "oic_status.h" nogil:
    ctypedef enum oic_status:
        OIC_OK
        OIC_ERR_STRAY_QUOTE
        OIC_ERR_AFTER_QUOTE
        OIC_ERR_UNTERMINATED_QUOTE
        OIC_ERR_EMPTY_LINE
        OIC_ERR_TOO_MANY_FIELDS
        OIC_ERR_TOO_FEW_FIELDS
        OIC_ERR_UTF8
        OIC_ERR_IMAGE_ID
        OIC_ERR_NUMBER
        OIC_ERR_INTEGER
        OIC_ERR_INT_RANGE
        OIC_ERR_EMPTY_REQUIRED
        OIC_ERR_NO_MEMORY
        OIC_ERR_CAPACITY
        OIC_NEED_MORE


cdef extern from "oic_dict.h" nogil:
    ctypedef struct oic_dict:
        int64_t *offsets
        uint8_t *bytes
        int64_t bytes_len
        int32_t count
    oic_status oic_dict_init(oic_dict *d)
    void oic_dict_free(oic_dict *d)
    oic_status oic_dict_clone(oic_dict *dst, const oic_dict *src)
    oic_status oic_dict_intern(oic_dict *d, const uint8_t *s, size_t n, int32_t *code, int *added)


cdef extern from "oic_csv.h" nogil:
    int OIC_COL_STRING, OIC_COL_IMAGE_ID, OIC_COL_DICTIONARY, OIC_COL_FLOAT64
    int OIC_COL_INT8, OIC_COL_INT32, OIC_COL_INT64

    ctypedef struct oic_column:
        int32_t type
        int32_t required
        void *values
        uint8_t *validity
        int64_t null_count
        int32_t *offsets
        uint8_t *data
        int64_t data_cap
        int64_t data_len
        const oic_dict *base
        oic_dict *dict
        const uint8_t *last
        int64_t last_len
        int32_t last_code

    ctypedef struct oic_parser:
        const uint8_t *buf
        int64_t len
        int at_eof
        locale_t c_locale
        int64_t pos
        int64_t lines
        int64_t rows
        int64_t rows_cap
        int64_t max_rows
        int64_t err_line
        int32_t err_column
        int64_t err_offset

    int OIC_PAD
    int64_t oic_count_terminators(const uint8_t *s, int64_t n)
    int64_t oic_find_split(const uint8_t *s, int64_t n)
    oic_status oic_parse_chunk(oic_parser *p, oic_column *cols, int32_t ncols)
    oic_status oic_read_record(oic_parser *p, int64_t *spans, int32_t max_fields, int32_t *nfields)


cdef class Vocabulary:
    cdef oic_dict d

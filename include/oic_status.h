/* oic_status.h: the one status enum of oicore's C code.
 *
 * Values are pinned: src/oicore/_csv.pyx maps each to an exception in one
 * place, and tests check the table. Append new codes; never renumber. */
#ifndef OIC_STATUS_H
#define OIC_STATUS_H

typedef enum {
    OIC_OK = 0,
    OIC_ERR_STRAY_QUOTE = 1,        /* '"' inside an unquoted field */
    OIC_ERR_AFTER_QUOTE = 2,        /* a byte other than ',' or a terminator after a closing quote */
    OIC_ERR_UNTERMINATED_QUOTE = 3, /* end of file inside a quoted field */
    OIC_ERR_EMPTY_LINE = 4,
    OIC_ERR_TOO_MANY_FIELDS = 5,
    OIC_ERR_TOO_FEW_FIELDS = 6,
    OIC_ERR_UTF8 = 7,
    OIC_ERR_IMAGE_ID = 8,           /* not [0-9a-f]{16} */
    OIC_ERR_NUMBER = 9,             /* not -?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)? */
    OIC_ERR_INTEGER = 10,           /* not -?[0-9]+ */
    OIC_ERR_INT_RANGE = 11,         /* an integer outside its column's type */
    OIC_ERR_EMPTY_REQUIRED = 12,    /* an empty field in a required column */
    OIC_ERR_NO_MEMORY = 13,
    OIC_ERR_CAPACITY = 14,          /* an output buffer was too small: a bug, never bad data */
    OIC_NEED_MORE = 15              /* the chunk ends inside a record (only when not at end of file) */
} oic_status;

#endif

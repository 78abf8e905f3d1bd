"""CRC-32C over buffers, with the GIL released (FORMAT.md, "Checksums")."""

from libc.stdint cimport uint8_t, uint32_t

cdef extern from "oic_crc32c.h" nogil:
    void oic_crc32c_init()
    uint32_t oic_crc32c(uint32_t crc, const uint8_t *s, size_t n)
    uint32_t oic_crc32c_sw(uint32_t crc, const uint8_t *s, size_t n)

oic_crc32c_init()


cdef uint32_t _crc(const uint8_t[::1] data, uint32_t crc, bint portable):
    cdef size_t n = data.shape[0]
    if n == 0:
        return crc
    with nogil:
        crc = oic_crc32c_sw(crc, &data[0], n) if portable else oic_crc32c(crc, &data[0], n)
    return crc


def crc32c(const uint8_t[::1] data, uint32_t crc=0):
    """CRC-32C of ``data``, continuing ``crc`` (0 to start)."""
    return _crc(data, crc, False)


def crc32c_portable(const uint8_t[::1] data, uint32_t crc=0):
    """The same by table lookups only (to test the hardware path against)."""
    return _crc(data, crc, True)

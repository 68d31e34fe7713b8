package archive

import "hash/crc32"

func crc32Checksum(b []byte) uint32 { return crc32.Checksum(b, crcTable) }

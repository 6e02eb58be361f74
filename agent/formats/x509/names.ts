/** X.501 Names (RFC 5280 §4.1.2.4): the common name, for messages and AMD role names. */
import { children, childrenAtLeast, decodeOid, decodeString, expectTag, TAG, type DerNode } from '../../util/der.js';

const COMMON_NAME = '2.5.4.3';

/** The first CN of a Name in encoding order; '' when there is none. */
export function commonName(name: DerNode): string {
  for (const rdn of children(expectTag(name, TAG.SEQUENCE, 'Name'))) {
    for (const atv of children(expectTag(rdn, TAG.SET, 'RelativeDistinguishedName'))) {
      const [type, value] = childrenAtLeast(expectTag(atv, TAG.SEQUENCE, 'AttributeTypeAndValue'), 2, 'AttributeTypeAndValue');
      if (decodeOid(type!) === COMMON_NAME) return decodeString(value!);
    }
  }
  return '';
}

/**
 * OpenCV's COLORMAP_PARULA (cv2.applyColorMap's lookup table, OpenCV 4.x): 256 BGR triples, the palette
 * DensePose's fine-segmentation visualiser paints part indices with. Stored as hex, three bytes per entry.
 */
const PARULA_HEX =
  '872a358a2c338d2e328f2f3092312f95332d98352c9b372a9e3828a03a27a33c25a63e24a93f22ac4121af431fb1451d' +
  'b4471cb7481aba4a19bd4c17bf4e16c25014c55112c85311cb550fce570ed0580cd35a0bd65c09d95e08dc6006df6104' +
  'e16303e16404e06504e06605df6705df6806df6a06de6b07de6c07dd6d08dd6e08dc6f09dc7009dc710adb720bdb730b' +
  'da740cda750cda760dd9770dd9780ed87a0ed87b0fd87c0fd77d10d77e10d67f11d68011d68112d58213d58313d48414' +
  'd48514d38613d38713d38813d28a12d28b12d18c11d18d11d08e10d08f10d0900fcf910fcf920fce930ece940ecd950d' +
  'cd960dcc970ccc980ccc9a0ccb9b0bcb9c0bca9d0aca9e0ac99f09c9a009c8a108c8a208c8a308c7a407c7a507c6a606' +
  'c6a707c4a808c3a80ac2a90bc1a90dbfaa0ebeab10bdab12bbac13baac15b9ad16b8ad18b6ae19b5af1bb4af1db3b01e' +
  'b1b020b0b121afb123aeb224acb326abb328aab429a9b42ba7b52ca6b52ea5b62fa4b631a2b733a1b834a0b8369fb937' +
  '9db9399cb93c9bb93f99ba4298ba4597ba4895ba4a94ba4d93bb5091bb5390bb568ebb588dbb5b8cbc5e8abc6189bc64' +
  '88bc6786bc6985bc6c84bd6f82bd7281bd7580bd787ebd7a7dbe7d7cbe807abe8379be8678be8876bf8b75bf8e74bf91' +
  '72bf9372bf9671bf9870be9a6fbe9c6ebe9f6dbea16cbea36bbea56abda769bdaa68bdac68bdae67bdb066bdb365bdb5' +
  '64bcb763bcb962bcbb61bcbe60bcc05fbcc25ebbc45ebbc75dbbc95cbbcb5bbbcd5abbd059bbd258bad457bad656bad8' +
  '55bada54bbdb53bcdc51bcdd50bdde4fbedf4ebee04cbfe24bbfe34ac0e449c1e547c1e646c2e745c3e843c3e942c4ea' +
  '41c5eb40c5ec3ec6ee3dc6ef3cc7f03bc8f139c8f238c9f337caf436caf534cbf633cbf732ccf931cdfa2fcdfb2ecefc' +
  '2dcffc2cd1fc2bd2fc2ad3fc29d5fc28d6fb27d8fb26d9fb25dbfb24dcfb23ddfb22dffb21e0fb20e2fb1fe3fb1ee4fb' +
  '1de6fa1ce7fa1be9fa1aeafa19ebfa18edfa17eefa16f0fa15f1fa14f3fa13f4f912f5f911f7f910f8f90ffaf90efbf9';

/** The BGR colour cv2.applyColorMap(value, COLORMAP_PARULA) gives a uint8 value. */
export function parulaBgr(value: number): [number, number, number] {
  const i = Math.min(Math.max(Math.trunc(value), 0), 255) * 6;
  const byte = (o: number) => parseInt(PARULA_HEX.slice(i + o, i + o + 2), 16);
  return [byte(0), byte(2), byte(4)];
}

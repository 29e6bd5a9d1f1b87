import { z } from 'zod';
import { durationMs } from '../../../common/duration.js';

/**
 * Scanner configs (scanner-tcp, scanner-serial, scanner-ws). No driver imports here: `validate`
 * loads schemas only. What every scanner kind shares comes first.
 */

/** GS1 reading and repeat marking, the same for every scanner kind. */
export const scanFields = {
  gs1: z
    .strictObject({
      /** One character the scanner sends in place of the group separator (keyboard-wedge setups lose GS). */
      gs_replacement: z.string().length(1).optional(),
      /** Read codes without an AIM symbology identifier as GS1 element strings. */
      assume: z.boolean().default(false),
    })
    .default({ assume: false }),
  /** The same code from the same device again within this window is marked `repeat: true` (still recorded). */
  repeat_window: durationMs.default(2_000),
};

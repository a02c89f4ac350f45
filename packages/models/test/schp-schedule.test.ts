import { describe, expect, it } from 'vitest';
import { schpCyclicalLR } from '../src/schp/schedule.js';

describe('schpCyclicalLR', () => {
  it('follows warmup, cosine annealing and cosine cycles at key points', () => {
    const schp = schpCyclicalLR({ baseLr: 7e-3 });
    expect(schp(0)).toBeCloseTo(7e-5, 15);
    expect(schp(10)).toBeCloseTo(7e-3, 15);
    expect(schp(100)).toBeCloseTo(3.5e-3, 15);
    expect(schp(110)).toBeCloseTo(3.5e-3, 15);
    expect(schp(105)).toBeCloseTo((7e-5 + 3.5e-3) / 2, 15);
  });

  it('rejects bad arguments', () => {
    expect(() => schpCyclicalLR({ baseLr: 1, warmupSteps: 10, cyclicalStart: 5 })).toThrow(
      'cyclicalStart must be an integer after the warmup',
    );
    expect(() => schpCyclicalLR({ baseLr: -1 })).toThrow('schpCyclicalLR: baseLr must be a finite number >= 0, got -1');
    expect(() => schpCyclicalLR({ baseLr: 1, cyclicalSteps: 0 })).toThrow(
      'schpCyclicalLR: cyclicalSteps must be an integer >= 1, got 0',
    );
    expect(() => schpCyclicalLR({ baseLr: 1 })(-1)).toThrow('schpCyclicalLR: step must be an integer >= 0, got -1');
  });
});

/**
 * Node flags for a process counted under valgrind: V8 compiles and collects garbage on other
 * threads, which run when valgrind lets them; single-threaded (and seeded), the same work lands at
 * the same point of every run, so instruction counts repeat and two revisions can be compared.
 */
export const DETERMINISTIC_V8 = ['--single-threaded', '--hash-seed=1', '--random-seed=1'];

//! `pedigree-probe`: behavioural analysis (trigger replay, STRIP, Neural Cleanse, activation
//! clustering, spectral signatures) and the cascade lab. Not built yet: see the lab issue.

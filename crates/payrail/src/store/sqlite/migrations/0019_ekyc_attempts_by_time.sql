-- e-KYC attempts that fell out of the window are swept for every mobile
-- at once (as OTP texts are, by otp_texts_by_time), not only for the
-- mobile being counted: the sweep finds them by this index, not by a scan.
CREATE INDEX ekyc_attempts_by_time ON ekyc_attempts (attempted_at);

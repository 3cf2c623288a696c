-- Issue 9 item 9 (OTP texts per mobile).
CREATE TABLE otp_texts (
    mobile  TEXT    NOT NULL,
    sent_at INTEGER NOT NULL
);
CREATE INDEX otp_texts_by_mobile ON otp_texts (mobile, sent_at);
CREATE INDEX otp_texts_by_time ON otp_texts (sent_at);

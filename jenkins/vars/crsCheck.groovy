// crsCheck: the compatibility verdict for an image only. Help: crsCheck.txt.
def call(Map cfg = [:]) {
    crsCi.run('check', 'crsCheck', cfg)
}
